"""Train and test a model from a config and write the run dir. No printing: the CLI renders the outcome.

``run_train`` is ``netcarve train``: load the data and the model (fresh and seeded, or a checkpoint), create
the run dir, train with the config's training settings (``last.pt`` every epoch, ``best.pt`` on a better
validation accuracy), evaluate ``best.pt`` on every split and write ``metrics.json``. ``run_test`` is
``netcarve test``: evaluate a checkpoint on one split.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netcarve.config.run import RunConfig
from netcarve.data.base import DatasetInfo, TensorSplits
from netcarve.errors import ConfigError
from netcarve.ir.graph import Graph
from netcarve.train.checkpoint import load_graph, save_checkpoint
from netcarve.train.loop import EpochRecord, EvalResult, FitResult, StepCallback, evaluate, fit

log = logging.getLogger(__name__)

#: the splits ``run_train`` evaluates the best checkpoint on
SPLITS = ("train", "val", "test")
#: evaluation batch size when none is given
EVAL_BATCH = 8192


@dataclass(frozen=True)
class TrainOutcome:
    config: RunConfig
    run_dir: Path
    info: DatasetInfo
    fit: FitResult
    #: the best checkpoint (``best.pt``) evaluated on train, val and test
    evaluations: dict[str, EvalResult]
    #: what ``metrics.json`` holds
    metrics: dict[str, Any]


@dataclass(frozen=True)
class TestOutcome:
    __test__ = False  # not a pytest test class

    config: RunConfig
    run_dir: Path
    info: DatasetInfo
    split: str
    result: EvalResult
    #: what ``metrics.json`` holds
    metrics: dict[str, Any]


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


@dataclass(frozen=True)
class TrainJob:
    """A training run that is ready to go: data and model loaded, run dir written (config and manifest)."""

    config: RunConfig
    splits: TensorSplits
    graph: Graph
    run_dir: Path

    def run(self, on_step: StepCallback | None = None) -> TrainOutcome:
        """Train (``last.pt`` every epoch, ``best.pt`` on a better validation accuracy), evaluate ``best.pt``
        on every split and write ``metrics.json``. ``on_step``: :func:`fit`'s progress callback."""
        from netcarve.workflow import train_config

        run_dir, graph, splits = self.run_dir, self.graph, self.splits

        def on_epoch(record: EpochRecord, is_best: bool) -> None:
            meta: dict[str, Any] = {
                "epoch": record.epoch,
                "val_accuracy": record.val_accuracy,
                "val_loss": record.val_loss,
            }
            if record.ebops is not None:  # learned quantizers: the resource beside the accuracy
                meta.update(ebops=record.ebops, beta=record.beta)
                log.info("epoch %d: val accuracy %.4f, EBOPs %.6g (beta %.3g)", record.epoch, record.val_accuracy,
                         record.ebops, record.beta)  # fmt: skip
            save_checkpoint(run_dir / "last.pt", graph, meta, overwrite=True)
            if is_best:
                save_checkpoint(run_dir / "best.pt", graph, meta, overwrite=True)

        result = fit(graph.module, splits, train_config(self.config), on_epoch=on_epoch, on_step=on_step)
        best = load_graph(run_dir / "best.pt", self.config.model, splits.info)
        evaluations = {name: evaluate(best.module, splits.split(name)) for name in SPLITS}
        metrics = {
            "final_train_loss": result.final.train_loss,
            "best_epoch": result.best_epoch,
            "steps": result.steps,
            **({"final_ebops": result.final.ebops} if result.final.ebops is not None else {}),
            **{f"{s}_{k}": v for s, r in evaluations.items() for k, v in r.as_dict().items()},
        }
        write_metrics(run_dir, metrics)
        return TrainOutcome(self.config, run_dir, splits.info, result, evaluations, metrics)


def start_train(config: RunConfig, load: str | None = None) -> TrainJob:
    """Load the data and the model (from ``load`` or ``load_name`` when given, else fresh and seeded) and
    create the run dir; nothing is trained yet."""
    from netcarve.workflow import initial_graph, load_splits, start_run

    splits = load_splits(config)
    graph = initial_graph(config, splits, load)
    return TrainJob(config, splits, graph, start_run(config, "train", splits))


def run_train(config: RunConfig, load: str | None = None, on_step: StepCallback | None = None) -> TrainOutcome:
    """``netcarve train`` in one call: :func:`start_train`, then :meth:`TrainJob.run`."""
    return start_train(config, load).run(on_step)


def run_test(config: RunConfig, split: str = "test", batch_size: int | None = None) -> TestOutcome:
    """Evaluate the checkpoint ``config.load_name`` on ``split``; writes a run dir with ``metrics.json``."""
    from netcarve.workflow import initial_graph, load_splits, start_run

    if not config.load_name:
        raise ConfigError("test needs a checkpoint: --load PATH (or load_name in the config)")
    splits = load_splits(config)
    graph = initial_graph(config, splits)
    result = evaluate(graph.module, splits.split(split), batch_size or EVAL_BATCH)
    run_dir = start_run(config, "test", splits)
    metrics = {
        "split": split,
        "loss": result.loss,
        "accuracy": result.accuracy,
        "per_class_accuracy": dict(zip(splits.info.class_names, result.per_class_accuracy, strict=False)),
        "checkpoint": str(config.load_name),
        "num_samples": result.num_samples,
    }
    write_metrics(run_dir, metrics)
    return TestOutcome(config, run_dir, splits.info, split, result, metrics)
