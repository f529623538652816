"""What a training run reports: per-epoch records, a model's fit result and a population member's outcome."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from netcarve.errors import TrainingError


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
    #: a model with learned quantizers: its EBOPs after the epoch (eval-mode ranges) and the beta it trained with
    ebops: float | None = None
    beta: float | None = None


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


@dataclass
class MemberOutcome:
    """One model's training: its history and steps; ``error`` when it diverged (the history holds the epochs
    before, the steps include the diverged epoch's; the others of a population are unaffected);
    ``stopped`` when ``keep_going`` returned False after ``result.history[-1]``."""

    result: FitResult
    error: TrainingError | None = None
    stopped: bool = False
    #: how many members trained in its batched model (1: trained alone with ``fit``)
    batch: int = 1


#: called after each epoch (record, is_best); used for checkpoints
EpochCallback = Callable[[EpochRecord, bool], None]
#: called with (steps_done, total_steps, running_loss, running_accuracy); used for progress bars
StepCallback = Callable[[int, int, float, float], None]
