"""Training one model: :func:`fit` (the tensor-resident loop: batches are slices of a seeded permutation; no
DataLoader), :func:`evaluate` and the intra-op thread rule. The epochs and steps are
:func:`netcarve.train.driver.drive`'s, shared with population training; :class:`Solo` is the one model as
its trainee."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from netcarve.config.training import TrainingSettings
from netcarve.data.base import Split, TensorSplits
from netcarve.errors import TrainingError
from netcarve.train.driver import EpochPlan, drive, epoch_plan, has_batch_norm, optimizer_for
from netcarve.train.records import (
    EpochCallback,
    EpochRecord,
    EvalResult,
    FitResult,
    MemberOutcome,
    StepCallback,
)
from netcarve.train.resources import ResourceTerm

__all__ = [
    "EpochCallback",
    "EpochPlan",
    "EpochRecord",
    "EvalResult",
    "FitResult",
    "KeepGoing",
    "MemberOutcome",
    "Solo",
    "StepCallback",
    "TrainConfig",
    "epoch_plan",
    "evaluate",
    "fit",
    "fit_outcome",
    "optimizer_for",
    "steps_only",
    "training_threads",
]

log = logging.getLogger(__name__)


#: what :func:`fit` trains with: the config's training settings, declared once (README: Config format)
TrainConfig = TrainingSettings


#: below this many parameters, one intra-op thread is fastest: the matrices are too small to split, and
#: thread hand-offs dominate (measured: jsc-three-linear-layers, 1 thread ≈ 9x faster than 2 on 2 cores)
SMALL_MODEL_PARAMS = 1_000_000


@contextmanager
def training_threads(module: nn.Module, requested: int | None) -> Iterator[None]:
    """Run with ``requested`` intra-op threads (default: 1 for small models), then restore the setting."""
    before = torch.get_num_threads()
    n_params = sum(p.numel() for p in module.parameters())
    threads = requested if requested is not None else (1 if n_params < SMALL_MODEL_PARAMS else before)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: called after each epoch (after ``on_epoch``); False stops training (pruners: validation always runs)
KeepGoing = Callable[[EpochRecord], bool]


def steps_only(report: Callable[[int, int], None] | None) -> StepCallback | None:
    """A :data:`StepCallback` passing on (steps_done, total_steps) only."""
    if report is None:
        return None
    return lambda done, total, loss, accuracy: report(done, total)


def member_losses(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy ``[K, B]`` of logits ``[K, C, B]`` (classes as dim 1) against labels ``[B]``: the
    same values per row as ``F.cross_entropy`` on ``[B, C]`` rows, several times faster, since torch's
    log-softmax over a short last dimension is slow (8,192 rows of 5 classes, 1 thread: 117 vs 661 µs; K = 32,
    B = 256: about 4x). A population's loss and validation, and :func:`evaluate` (K = 1), use it."""
    return F.cross_entropy(out, y.expand(out.shape[0], -1), reduction="none")


def evaluate(module: nn.Module, split: Split, batch_size: int = 8192) -> EvalResult:
    """Loss, accuracy and per-class accuracy of ``module`` on ``split`` (eval mode, no grad)."""
    was_training = module.training
    module.eval()
    n = len(split)
    if n == 0:
        raise TrainingError("cannot evaluate on an empty split")
    loss_sum = torch.zeros((), dtype=torch.float64)
    preds = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            xb, yb = split.x[start : start + batch_size], split.y[start : start + batch_size]
            out = module(xb)
            if out.dim() == 2:  # rows of class logits: classes as dim 1 of [1, C, B] (a view, no copy)
                loss_sum += member_losses(out.t().unsqueeze(0), yb).sum().double()
            else:
                loss_sum += F.cross_entropy(out, yb, reduction="sum").double()
            preds.append(out.argmax(dim=1))
    module.train(was_training)
    pred = torch.cat(preds)
    correct = pred == split.y
    num_classes = int(split.y.max().item()) + 1 if n else 0
    per_class = []
    for c in range(num_classes):
        mask = split.y == c
        per_class.append(float(correct[mask].float().mean()) if bool(mask.any()) else float("nan"))
    return EvalResult(float(loss_sum) / n, float(correct.float().mean()), tuple(per_class), n)


class _SoloTally:
    """One model's epoch: the batch loss is accumulated in place and the predictions are written into a
    buffer, so a step adds only these two cheap ops and the epoch's accuracy is one comparison at the end."""

    def __init__(self, ys: torch.Tensor, seen: int) -> None:
        self.ys, self.seen = ys, seen
        self.preds = torch.empty(seen, dtype=torch.int64)
        self.loss_sum = torch.zeros((), dtype=torch.float64)

    def add(self, out: torch.Tensor, losses: torch.Tensor, y: torch.Tensor, lo: int, hi: int) -> None:
        self.loss_sum.add_(losses.detach(), alpha=hi - lo)
        torch.argmax(out.detach(), dim=1, out=self.preds[lo:hi])

    def running(self, hi: int) -> tuple[float, float]:
        return float(self.loss_sum) / hi, int((self.preds[:hi] == self.ys[:hi]).sum()) / hi

    def losses(self) -> list[float]:
        return [float(self.loss_sum) / max(self.seen, 1)]

    def accuracies(self) -> list[float]:
        return [int((self.preds == self.ys[: self.seen]).sum()) / max(self.seen, 1)]


class Solo:
    """One model as the training driver's trainee (unit 0)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.units = [0]
        self.has_batch_norm = has_batch_norm(module)
        self.resources = ResourceTerm.of(module)

    def holder(self) -> nn.Module:
        return self.module

    def grad_masks(self) -> list[tuple[nn.Parameter, torch.Tensor]]:
        return []

    def train_mode(self) -> None:
        self.module.train()

    def forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.module(x)
        loss = F.cross_entropy(out, y)
        if self.resources is not None and self.resources.beta > 0:
            return out, loss + self.resources.penalty(), loss
        return out, loss, loss

    def end_epoch(self, epoch: int) -> list[tuple[float | None, float | None]]:
        if self.resources is None:
            return [(None, None)]
        return [self.resources.end_epoch(epoch)]

    def tally(self, ys: torch.Tensor, seen: int) -> _SoloTally:
        return _SoloTally(ys, seen)

    def validate(self, split: Split) -> tuple[list[float], list[float]]:
        val = evaluate(self.module, split)
        return [val.loss], [val.accuracy]

    def release(self, pos: int) -> None:
        self.module.eval()

    def write(self, pos: int) -> None:
        """Nothing: the module trains in place."""

    def keep(self, positions: list[int]) -> None:
        self.units = [self.units[pos] for pos in positions]


def fit(
    module: nn.Module,
    splits: TensorSplits,
    cfg: TrainConfig,
    *,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
    validate: bool = True,
    num_threads: int | None = None,
    keep_going: KeepGoing | None = None,
) -> FitResult:
    """Train ``module`` in place on ``splits.train``; validate on ``splits.val`` after every epoch.

    ``on_step`` is called every ``cfg.log_every_n_steps`` optimizer steps and after the last one.
    ``num_threads``: intra-op threads while training; None = 1 for small models (:func:`training_threads`).
    Deterministic on CPU for a given seed: the permutation comes from a generator seeded with ``cfg.seed``.
    Raises :class:`TrainingError` when the loss becomes NaN or infinite.
    ``keep_going(record)`` is called after each epoch (after ``on_epoch``); when it returns False, training
    stops there and the result's ``stopped`` is True. With ``keep_going``, validation always runs.
    """
    outcome = fit_outcome(module, splits, cfg, on_epoch=on_epoch, on_step=on_step, validate=validate,
                          num_threads=num_threads, keep_going=keep_going)  # fmt: skip
    if outcome.error is not None:
        raise outcome.error
    return outcome.result


def fit_outcome(
    module: nn.Module,
    splits: TensorSplits,
    cfg: TrainConfig,
    *,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
    validate: bool = True,
    num_threads: int | None = None,
    keep_going: KeepGoing | None = None,
) -> MemberOutcome:
    """:func:`fit`, a divergence returned in the outcome (its history: the epochs before; its steps: the
    diverged epoch's included) instead of raised. The module ends in eval mode either way."""
    validate = validate or keep_going is not None
    epoch_done = None if on_epoch is None else lambda unit, record, is_best: on_epoch(record, is_best)
    keep = None if keep_going is None else lambda unit, record: keep_going(record)
    with training_threads(module, num_threads):
        outcomes, _ = drive(
            Solo(module), splits, cfg, validate=validate, keep_going=keep, on_epoch=epoch_done, on_step=on_step
        )
    return outcomes[0]
