"""The one training step and epoch loop, with two drivers: one model (:func:`netcarve.train.loop.fit`) and a
stacked population (:mod:`netcarve.train.population`, K members trained as one batched model).

:func:`drive` trains a :class:`Trainee`: ``units`` models at once (one, or a population's members in stack
order). Every training setting (:class:`~netcarve.config.training.TrainingSettings`) is read here, once for
both: the rows (``num_samples``), the batch order (``seed``), the batches (``batch_size``; with BatchNorm an
epoch skips a one-row last batch), the step limits (``max_epochs``, ``max_steps``), the optimizer and its
schedule (``optimizer``, ``learning_rate``, ``weight_decay``, ``lr_scheduler``, ``num_warmup_steps``) and
the progress interval (``log_every_n_steps``). A trainee supplies only what differs: its forward pass and
loss, the gradient masks of padded weights, how a step's loss and predictions are accumulated
(:class:`Tally`), validation, and what happens when a unit leaves (written back to its module, eval mode)
or the others are re-stacked without it.

Per epoch, each unit's record is made as ``fit`` makes it; a unit whose train loss is not finite leaves with
fit's :class:`~netcarve.errors.TrainingError` (``fit`` raises it), one for which ``keep_going`` returns False
leaves stopped; the others go on with their optimizer state (:func:`~netcarve.train.optim.select_state`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from netcarve.config.training import TrainingSettings
from netcarve.data.base import Split, TensorSplits
from netcarve.errors import TrainingError
from netcarve.train.optim import Schedule, Stepper, make_optimizer, select_state
from netcarve.train.records import EpochRecord, FitResult, MemberOutcome, StepCallback

log = logging.getLogger(__name__)

#: (unit, that unit's epoch record) -> keep training?
UnitKeepGoing = Callable[[int, EpochRecord], bool]
#: called after each epoch of a unit (unit, record, is_best)
UnitEpochCallback = Callable[[int, EpochRecord, bool], None]


class Stopped(Exception):
    """The ``stop`` event was set (a batch trained beside this one failed or was interrupted)."""


class Tally(Protocol):
    """One epoch's train loss and predictions, accumulated step by step."""

    def add(self, out: torch.Tensor, losses: torch.Tensor, y: torch.Tensor, lo: int, hi: int) -> None:
        """Rows ``lo:hi`` gave logits ``out`` and per-unit mean losses ``losses`` (a scalar for one unit)."""
        ...

    def running(self, hi: int) -> tuple[float, float]:
        """Mean loss and accuracy over the rows so far (a population: over its members too)."""
        ...

    def losses(self) -> list[float]:
        """Each unit's mean train loss over the epoch."""
        ...

    def accuracies(self) -> list[float]:
        """Each unit's train accuracy over the epoch."""
        ...


class Trainee(Protocol):
    """What :func:`drive` trains: ``units`` (ids, in stack order) trained at once."""

    units: list[int]
    #: a unit has a BatchNorm: an epoch skips a one-row last batch (:func:`epoch_plan`)
    has_batch_norm: bool

    def holder(self) -> nn.Module:
        """The module whose parameters the optimizer steps."""
        ...

    def grad_masks(self) -> list[tuple[nn.Parameter, torch.Tensor]]:
        """(parameter, 0/1 mask) pairs: each gradient is multiplied by its mask before every step."""
        ...

    def train_mode(self) -> None: ...

    def forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, the loss to differentiate, the per-unit mean losses for :meth:`Tally.add`)."""
        ...

    def tally(self, ys: torch.Tensor, seen: int) -> Tally:
        """A new epoch's tally over the first ``seen`` of the permuted labels ``ys``."""
        ...

    def validate(self, split: Split) -> tuple[list[float], list[float]]:
        """Each unit's loss and accuracy on ``split`` (eval mode, no grad; the mode is restored)."""
        ...

    def release(self, pos: int) -> None:
        """The unit at ``pos`` is done: its module holds its weights, in eval mode."""
        ...

    def write(self, pos: int) -> None:
        """The module of the unit at ``pos`` holds its weights now (before ``on_epoch`` reads it)."""
        ...

    def keep(self, positions: list[int]) -> None:
        """Go on with the units at ``positions`` only (re-stacked in this order; none: training ends)."""
        ...

    def end_epoch(self, epoch: int) -> list[tuple[float | None, float | None]]:
        """Epoch ``epoch`` is over: each unit's (EBOPs, beta it trained with), None for a unit without learned
        quantizers; a beta schedule moves on to the next epoch."""
        ...


def has_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` holds a BatchNorm (which cannot train on a one-row batch)."""
    return any(isinstance(m, _BatchNorm) for m in module.modules())


def optimizer_for(module: nn.Module, cfg: TrainingSettings, total_steps: int) -> tuple[Stepper, Schedule | None]:
    """The optimizer and learning-rate schedule ``cfg`` asks for, over ``total_steps`` steps."""
    return make_optimizer(
        module,
        cfg.optimizer,
        cfg.learning_rate,
        cfg.weight_decay,
        total_steps,
        cfg.num_warmup_steps,
        cfg.lr_scheduler,
    )


@dataclass(frozen=True)
class EpochPlan:
    """What every epoch trains on: the ``train`` rows (the split's first ``num_samples``), in
    ``steps_per_epoch`` optimizer steps, ``total_steps`` in all (``max_steps`` applied)."""

    train: Split
    steps_per_epoch: int
    total_steps: int


def epoch_plan(splits: TensorSplits, cfg: TrainingSettings, has_batch_norm: bool) -> EpochPlan:
    """The rows and steps of a training run; TrainingError on an empty split. With BatchNorm, an epoch whose
    last batch would hold exactly one row skips it (BatchNorm cannot train on one sample)."""
    train = splits.train.head(cfg.num_samples)
    n = len(train)
    if n == 0:
        raise TrainingError("the training split is empty")
    batched = n
    if n > 1 and n % cfg.batch_size == 1 and has_batch_norm:
        log.info("each epoch skips its last, one-row batch (BatchNorm needs 2 rows; %d rows, batch %d)", n,
                 cfg.batch_size)  # fmt: skip
        batched = n - 1
    steps_per_epoch = math.ceil(batched / cfg.batch_size)
    total = steps_per_epoch * cfg.max_epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    return EpochPlan(train, steps_per_epoch, total)


@dataclass
class _Steps:
    """The optimizer steps of a run: per step one forward, loss, backward, masked gradients, learning rate
    and optimizer step, and the tally's two cheap ops; nothing else."""

    trainee: Trainee
    optimizer: Stepper
    schedule: Schedule | None
    masks: list[tuple[nn.Parameter, torch.Tensor]]
    batch_size: int
    total_steps: int
    report_every: int
    on_step: StepCallback | None
    stop: threading.Event | None

    def epoch(self, xs: torch.Tensor, ys: torch.Tensor, steps: int, step: int) -> Tally:
        """Train ``steps`` batches of the permuted rows ``xs``, ``ys`` from global step ``step``."""
        trainee, optimizer, schedule, masks = self.trainee, self.optimizer, self.schedule, self.masks
        on_step, stop, bs, total = self.on_step, self.stop, self.batch_size, self.total_steps
        seen = min(len(ys), steps * bs)
        tally = trainee.tally(ys, seen)
        forward_loss, add = trainee.forward_loss, tally.add
        for i in range(steps):
            if stop is not None and stop.is_set():
                raise Stopped
            lo, hi = i * bs, min((i + 1) * bs, seen)
            yb = ys[lo:hi]
            out, loss, losses = forward_loss(xs[lo:hi], yb)
            optimizer.zero_grad()
            loss.backward()
            for p, mask in masks:
                if p.grad is not None:
                    p.grad.mul_(mask)
            if schedule is not None:
                optimizer.lr = schedule.lr(step + i)
            optimizer.step()
            add(out, losses, yb, lo, hi)
            done = step + i + 1
            if on_step is not None and (done % self.report_every == 0 or done == total):
                on_step(done, total, *tally.running(hi))
        return tally


def drive(
    trainee: Trainee,
    splits: TensorSplits,
    cfg: TrainingSettings,
    *,
    validate: bool,
    keep_going: UnitKeepGoing | None = None,
    on_epoch: UnitEpochCallback | None = None,
    on_step: StepCallback | None = None,
    stop: threading.Event | None = None,
) -> tuple[dict[int, MemberOutcome], Stepper]:
    """Train ``trainee``'s units on ``splits.train`` as ``cfg`` says; each unit's outcome, and the optimizer
    of the last units trained. ``validate``: every record holds the unit's validation loss and accuracy.
    ``on_step(done, total, running_loss, running_accuracy)`` every ``cfg.log_every_n_steps`` steps and after
    the last one; ``stop`` set ends the run with :class:`Stopped` before the next step."""
    plan = epoch_plan(splits, cfg, trainee.has_batch_norm)
    train, n = plan.train, len(plan.train)
    total = plan.total_steps
    optimizer, schedule = optimizer_for(trainee.holder(), cfg, total)
    run = _Steps(trainee, optimizer, schedule, trainee.grad_masks(), cfg.batch_size, total, cfg.log_every_n_steps,
                 on_step, stop)  # fmt: skip
    generator = torch.Generator().manual_seed(cfg.seed)
    results = {unit: FitResult() for unit in trainee.units}
    best = dict.fromkeys(trainee.units, -1.0)
    outcomes: dict[int, MemberOutcome] = {}
    step = 0
    trainee.train_mode()
    for epoch in range(cfg.max_epochs):
        if step >= total or not trainee.units:
            break
        perm = torch.randperm(n, generator=generator)
        steps = min(plan.steps_per_epoch, total - step)
        tally = run.epoch(train.x[perm], train.y[perm], steps, step)
        step += steps
        train_loss, train_acc = tally.losses(), tally.accuracies()
        k = len(trainee.units)
        val_loss, val_acc = trainee.validate(splits.val) if validate else ([math.nan] * k, [math.nan] * k)
        resources = trainee.end_epoch(epoch)
        leaving: list[int] = []
        for pos, unit in enumerate(trainee.units):
            result = results[unit]
            result.steps = step
            if not math.isfinite(train_loss[pos]):
                error = TrainingError(f"training diverged: loss is {train_loss[pos]} in epoch {epoch}")
                outcomes[unit] = MemberOutcome(result, error)
                leaving.append(pos)
                continue
            record = EpochRecord(
                epoch, step, train_loss[pos], train_acc[pos], val_loss[pos], val_acc[pos], run.optimizer.lr,
                *resources[pos],
            )  # fmt: skip
            result.history.append(record)
            is_best = validate and val_acc[pos] > best[unit]
            if is_best:
                best[unit], result.best_epoch = val_acc[pos], epoch
            log.debug("unit %d, epoch %d: %s", unit, epoch, record)
            if on_epoch is not None:
                trainee.write(pos)
                on_epoch(unit, record, is_best)
            if keep_going is not None and not keep_going(unit, record):
                result.stopped = True
                outcomes[unit] = MemberOutcome(result, stopped=True)
                leaving.append(pos)
        if leaving:
            _leave(trainee, run, leaving, cfg)
    for pos, unit in enumerate(trainee.units):
        results[unit].steps = step
        trainee.release(pos)
        outcomes[unit] = MemberOutcome(results[unit])
    return outcomes, run.optimizer


def _leave(trainee: Trainee, run: _Steps, leaving: list[int], cfg: TrainingSettings) -> None:
    """Release the units at ``leaving``; re-stack the others with their optimizer state."""
    for pos in leaving:
        trainee.release(pos)
    keep = [pos for pos in range(len(trainee.units)) if pos not in leaving]
    old_params = list(trainee.holder().parameters()) if keep else []
    trainee.keep(keep)
    if not keep:
        return
    optimizer, run.schedule = optimizer_for(trainee.holder(), cfg, run.total_steps)
    select_state(
        run.optimizer, optimizer, old_params, torch.tensor(keep, dtype=torch.int64, device=old_params[0].device)
    )
    run.optimizer, run.masks = optimizer, trainee.grad_masks()
