"""Training: the tensor-resident loop, optimizers, schedules and weights-only checkpoints."""

from netcarve.train.checkpoint import build_graph, load_checkpoint, load_graph, save_checkpoint
from netcarve.train.loop import EvalResult, FitResult, TrainConfig, evaluate, fit

__all__ = [
    "EvalResult",
    "FitResult",
    "TrainConfig",
    "build_graph",
    "evaluate",
    "fit",
    "load_checkpoint",
    "load_graph",
    "save_checkpoint",
]
