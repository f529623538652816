"""The tensor-resident training loop: batches are slices of a seeded permutation; no DataLoader."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from netcarve.config.training import TrainingSettings
from netcarve.data.base import Split, TensorSplits
from netcarve.errors import TrainingError
from netcarve.train.optim import Schedule, Stepper, make_optimizer

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


@dataclass(frozen=True)
class EvalResult:
    loss: float
    accuracy: float
    per_class_accuracy: tuple[float, ...]
    num_samples: int

    def as_dict(self) -> dict[str, float]:
        return {"loss": self.loss, "accuracy": self.accuracy}


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    steps: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float


@dataclass
class FitResult:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = -1
    steps: int = 0
    #: ``keep_going`` returned False after the last record: training stopped early
    stopped: bool = False

    @property
    def final(self) -> EpochRecord:
        return self.history[-1]


#: called after each epoch (record, is_best); used for checkpoints
EpochCallback = Callable[[EpochRecord, bool], None]
#: called with (steps_done, total_steps, running_loss, running_accuracy); used for progress bars
StepCallback = Callable[[int, int, float, float], None]
#: called after each epoch (after ``on_epoch``); False stops training (pruners: validation always runs)
KeepGoing = Callable[[EpochRecord], bool]


def steps_only(report: Callable[[int, int], None] | None) -> StepCallback | None:
    """A :data:`StepCallback` passing on (steps_done, total_steps) only."""
    if report is None:
        return None
    return lambda done, total, loss, accuracy: report(done, total)


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


@dataclass(frozen=True)
class _EpochRun:
    """One pass over a permuted copy of the train split. Per step it adds only two cheap ops to the
    optimizer step: the batch loss is accumulated in place and the predictions are written into a buffer,
    so the epoch's accuracy is one comparison at the end."""

    module: nn.Module
    optimizer: Stepper
    schedule: Schedule | None
    batch_size: int
    on_step: StepCallback | None
    report_every: int
    total_steps: int

    def run(self, xs: torch.Tensor, ys: torch.Tensor, steps: int, step: int) -> tuple[float, int, int]:
        """Train ``steps`` batches; return (summed loss, correct predictions, samples seen)."""
        seen = min(len(ys), steps * self.batch_size)
        preds = torch.empty(seen, dtype=torch.int64)
        loss_sum = torch.zeros((), dtype=torch.float64)
        for i in range(steps):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, seen)
            out = self.module(xs[lo:hi])
            loss = F.cross_entropy(out, ys[lo:hi])
            self.optimizer.zero_grad()
            loss.backward()
            if self.schedule is not None:
                self.optimizer.lr = self.schedule.lr(step + i)
            self.optimizer.step()
            loss_sum.add_(loss.detach(), alpha=hi - lo)
            torch.argmax(out.detach(), dim=1, out=preds[lo:hi])
            done = step + i + 1
            if self.on_step is not None and (done % self.report_every == 0 or done == self.total_steps):
                running = int((preds[:hi] == ys[:hi]).sum())
                self.on_step(done, self.total_steps, float(loss_sum) / hi, running / hi)
        return float(loss_sum), int((preds == ys[:seen]).sum()), seen


def optimizer_for(module: nn.Module, cfg: TrainConfig, total_steps: int) -> tuple[Stepper, Schedule | None]:
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


def epoch_plan(splits: TensorSplits, cfg: TrainConfig, has_batch_norm: bool) -> EpochPlan:
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
    with training_threads(module, num_threads):
        return _fit(module, splits, cfg, on_epoch, on_step, validate or keep_going is not None, keep_going)


def _fit(
    module: nn.Module,
    splits: TensorSplits,
    cfg: TrainConfig,
    on_epoch: EpochCallback | None,
    on_step: StepCallback | None,
    validate: bool,
    keep_going: KeepGoing | None = None,
) -> FitResult:
    plan = epoch_plan(splits, cfg, any(isinstance(m, _BatchNorm) for m in module.modules()))
    train, n = plan.train, len(plan.train)
    steps_per_epoch, total_steps = plan.steps_per_epoch, plan.total_steps
    optimizer, schedule = optimizer_for(module, cfg, total_steps)
    generator = torch.Generator().manual_seed(cfg.seed)
    result = FitResult()
    best_acc = -1.0
    step = 0
    epoch_run = _EpochRun(module, optimizer, schedule, cfg.batch_size, on_step, cfg.log_every_n_steps, total_steps)
    module.train()
    for epoch in range(cfg.max_epochs):
        if step >= total_steps:
            break
        perm = torch.randperm(n, generator=generator)
        steps = min(steps_per_epoch, total_steps - step)
        loss_sum, correct, seen = epoch_run.run(train.x[perm], train.y[perm], steps, step)
        step += steps
        train_loss = float(loss_sum) / max(seen, 1)
        if not math.isfinite(train_loss):
            raise TrainingError(f"training diverged: loss is {train_loss} in epoch {epoch}")
        val = evaluate(module, splits.val) if validate else EvalResult(float("nan"), float("nan"), (), 0)
        module.train()
        record = EpochRecord(
            epoch,
            step,
            train_loss,
            correct / max(seen, 1),
            val.loss,
            val.accuracy,
            optimizer.lr,
        )
        result.history.append(record)
        is_best = validate and val.accuracy > best_acc
        if is_best:
            best_acc, result.best_epoch = val.accuracy, epoch
        log.debug("epoch %d: %s", epoch, record)
        if on_epoch is not None:
            on_epoch(record, is_best)
        if keep_going is not None and not keep_going(record):
            result.stopped = True
            break
    result.steps = step
    module.eval()
    return result
