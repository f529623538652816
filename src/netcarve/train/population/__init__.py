"""Train a population of candidates as one batched model: :func:`fit_population`.

A search trains many small MLPs from one base model; alone, each step of a 16-16-16-5 MLP is dominated by
per-op overhead. Here the members whose modules share a *template* are stacked along a leading candidate
dimension and trained together, each as ``torch.manual_seed(cfg.seed); fit(module, splits, cfg)`` would
train it alone (same batches, BatchNorm one-row-batch rule, optimizer, schedule, step limits and records):

- **Template** (:mod:`.template`): the module's fx graph is a chain ``x → m1 → … → mn → out`` of
  call_module nodes whose modules are of kinds with a ``batched`` capability in the op-kind registry
  (built in: ``Linear``/``QuantizedLinear``, ``ReLU``/``QuantizedReLU``, ``BatchNorm1d``/
  ``QuantizedBatchNorm1d`` (affine, tracking running statistics, a float momentum) and ``Identity``;
  :mod:`.layers`); the template is the sequence of kinds, each kind's key (bias presence, BatchNorm
  momentum/eps) and, per node, the quantized operands with their quantizer (``integer`` or ``learned``) and
  round/overflow modes. Per-member quantizer widths, frac widths and signedness become ``[K]`` tensors
  (scale 2^frac, integer range k_lo..k_hi, STE bounds lo..hi) broadcast over the candidate dimension; the
  forward and the clipped straight-through gradient are the integer quantizer's (:mod:`.quant`). A
  ``learned`` operand (same granularity and sign in the batch) stacks each member's fracs and calibrated
  ranges, padded; each member's loss adds its own beta · EBOPs and its beta follows its own schedule, as
  ``fit``'s resource term does alone (:mod:`netcarve.train.resources`). Hidden
  widths may differ: each is padded to the batch's largest width; the input and the output (class count)
  widths are the template's own.
- **Partition** (:mod:`.partition`): padding a narrow member to a wide one costs the wide one's compute
  (at widths 64 a step is bound by the matrix products), so a template group is cut into batches of
  similar widths by a fitted step-time model (``STEP_MEMBER_COST``, ``STEP_WEIGHT_COST``), merging
  batches while that lowers the modelled total.
- **Compute** (:mod:`.layers`, :mod:`.stack`): weights ``[K, out, in]``, activations features-major
  ``[K, F, B]``; the loss is the sum over members of each member's mean cross-entropy, so each member's
  gradient is its solo gradient. The epochs and steps are :func:`netcarve.train.driver.drive`'s, the same
  as ``fit``'s: every training setting acts on a batch exactly as on a member alone
  (``tests/train/test_population_contract.py`` checks each one).
- **Exactness**: forward passes and gradients agree with the solo ones to the last bits (a batched,
  features-major matrix product sums in another order than ``addmm``: at most 4e-7 measured on Lab 4
  logits), so trained weights agree to about 1e-7 (tested to rtol 1e-4). Where a candidate's training is
  chaotic, such last-bit differences can grow as much as a change of thread count grows them in solo
  training (Lab 4, 630k rows: one configuration reaches 0.519 solo on 1 thread, 0.642 solo on 2 threads).
  One exception, inherent to the model, not the batching: the bias of a
  Linear followed by a BatchNorm has a true gradient of 0 (the BatchNorm subtracts it again), so its
  computed gradient is rounding noise, which Adam normalises into full-size steps; such a bias (and the
  BatchNorm's running mean, which follows it) random-walks differently in any run that does not round
  bit for bit, batched or solo on another thread count or CPU, and eval accuracy moves by about a percent.
- **Padding** is inert: padded weights, biases and BatchNorm affine parameters start at 0 and their gradients
  are multiplied by a 0/1 mask before every step, so they, their gradients and the optimizer state stay
  exactly 0 (a quantizer maps 0 to 0 in every mode, and a padded unit's activation is always 0).
- **Leaving the batch** (the driver): at an epoch boundary a member whose train loss is not finite (its
  :class:`MemberOutcome` gets fit's ``TrainingError``), or for which ``keep_going`` returned False, is
  written back to its module and removed: parameters, BatchNorm statistics and optimizer state of the
  others are re-stacked with ``index_select`` (:func:`~netcarve.train.optim.select_state`).
- **Fallback**: a member whose module the batched path cannot express (a kind without a ``batched``
  capability such as dropout, another quantizer, a non-chain graph, a frozen parameter, …) — or that no
  other member shares a template with — is trained by :func:`~netcarve.train.loop.fit` itself (seeded as
  a search candidate is), with an INFO log of why.

Threads (:mod:`.lanes`): ``num_threads`` (default: every thread torch has, :data:`.lanes.DEFAULT_THREADS`). One
batch uses them all as intra-op threads; several batches run side by side in lanes that share them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from netcarve.data.base import TensorSplits
from netcarve.train.driver import UnitEpochCallback, UnitKeepGoing
from netcarve.train.loop import TrainConfig, fit_outcome, steps_only
from netcarve.train.optim import optimizer_stacks
from netcarve.train.population.lanes import Progress, thread_count, train_batches, unit_step
from netcarve.train.population.partition import partition_by_width
from netcarve.train.population.stack import Group
from netcarve.train.population.template import Chain, Unsupported, chain, module_widths
from netcarve.train.records import MemberOutcome

__all__ = [
    "KeepGoing",
    "MemberOutcome",
    "alone_reason",
    "fit_population",
    "member_bytes",
]

log = logging.getLogger(__name__)

#: (member index, that member's epoch record) -> keep training?
KeepGoing = UnitKeepGoing


def alone_reason(cfg: TrainConfig) -> str | None:
    """Why ``cfg`` makes every member train alone (a setting the stacked model cannot honor), else None.
    Every other training setting acts on a stacked member exactly as on one alone (the training driver)."""
    if not optimizer_stacks(cfg.optimizer):
        return f"optimizer {cfg.optimizer!r} cannot train stacked members (its Stepper has no stacks = True)"
    return None


def _fit_alone(
    index: int,
    module: nn.Module,
    splits: TensorSplits,
    cfg: TrainConfig,
    validate: bool,
    keep_going: KeepGoing | None,
    num_threads: int | None,
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: UnitEpochCallback | None = None,
) -> MemberOutcome:
    """``torch.manual_seed(cfg.seed); fit(module, …)``, a divergence in the outcome."""
    member_keep_going = None if keep_going is None else lambda record: keep_going(index, record)
    member_on_epoch = None if on_epoch is None else lambda record, best: on_epoch(index, record, best)
    torch.manual_seed(cfg.seed)
    return fit_outcome(module, splits, cfg, validate=validate, num_threads=num_threads,
                       keep_going=member_keep_going, on_step=steps_only(on_step),
                       on_epoch=member_on_epoch)  # fmt: skip


def fit_population(
    modules: Sequence[nn.Module],
    splits: TensorSplits,
    cfg: TrainConfig,
    *,
    validate: bool = False,
    keep_going: KeepGoing | None = None,
    num_threads: int | None = None,
    labels: Sequence[str] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: UnitEpochCallback | None = None,
) -> list[MemberOutcome]:
    """Train each of ``modules`` in place (ending in eval mode) as ``torch.manual_seed(cfg.seed); fit(module,
    splits, cfg, validate=validate)`` would, batching the members that share a template (module docstring).

    ``validate`` or ``keep_going`` given: every epoch's record holds the member's validation loss and
    accuracy. ``keep_going(i, record)`` returning False removes member ``i`` after that epoch. A member that
    diverges gets its ``TrainingError`` in its outcome; the others are unaffected. The outcome of a diverged
    member has the records of the epochs before and the steps it ran (the diverged epoch's included).
    ``labels`` name the members in log messages (e.g. their trial numbers). ``on_step(done, total)``: the
    steps of every batch and lone member summed (each reports as :func:`fit`'s ``on_step`` does), for a
    progress bar; called from the training threads, one at a time. ``on_epoch(i, record, is_best)`` after
    each epoch of member ``i``, its module holding that epoch's weights (one call at a time).
    """
    validate = validate or keep_going is not None

    def name(i: int) -> str:
        return labels[i] if labels is not None else f"population member {i}"

    outcomes: dict[int, MemberOutcome] = {}
    groups: dict[tuple[Any, ...], list[tuple[int, Chain]]] = {}
    alone: list[int] = []
    settings = alone_reason(cfg)
    for i, module in enumerate(modules):
        if settings is not None:
            log.info("%s is trained alone: %s", name(i), settings)
            alone.append(i)
            continue
        try:
            member = chain(module)
        except Unsupported as why:
            log.info("%s is trained alone: %s", name(i), why)
            alone.append(i)
            continue
        groups.setdefault(member.key, []).append((i, member))
    batched: list[Group] = []
    threads = thread_count(num_threads)
    for members in groups.values():
        if len(members) == 1:
            log.info("%s is trained alone: no other candidate has its layer template", name(members[0][0]))
            alone.append(members[0][0])
        else:
            for chunk in partition_by_width(members, cfg.batch_size):
                batched.append(Group([i for i, _ in chunk], [c for _, c in chunk]))
    progress = Progress(len(batched) + len(alone), on_step) if on_step is not None else None
    train_batches(batched, threads, splits, cfg, validate, keep_going, outcomes, progress, on_epoch)
    for n, i in enumerate(sorted(alone)):
        report = unit_step(progress, len(batched) + n)
        outcomes[i] = _fit_alone(i, modules[i], splits, cfg, validate, keep_going, num_threads, report, on_epoch)
    return [outcomes[i] for i in range(len(modules))]


def member_bytes(module: nn.Module, batch_size: int) -> int:
    """Estimated training memory of one member in a population (float32 bytes): parameters, gradients and
    two Adam states (4 × params), plus one batch's activations: per node, its output, the output's gradient
    and what autograd saves (quantizer masks, ReLU/BatchNorm inputs), about 4 tensors of batch × width."""
    params = sum(p.numel() for p in module.parameters())
    return 4 * (4 * params + 4 * batch_size * sum(module_widths(module)))
