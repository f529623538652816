"""Train and test a model from a config and write the run dir. No printing: the CLI renders the outcome.

``run_train`` is ``netcarve train``: load the data and the model (fresh and seeded, or a checkpoint), create
the run dir, train with the config's training settings (``last.pt`` every epoch, ``best.pt`` on a better
validation accuracy; a model with learned quantizers also keeps its (validation accuracy, EBOPs) front of
epochs in ``front/`` and ``front.json``, with alkaid's estimates of each), evaluate ``best.pt`` on every split
and write ``metrics.json``. ``run_test`` is
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
from netcarve.errors import ConfigError, NetcarveError
from netcarve.ir.graph import Graph
from netcarve.train.checkpoint import load_graph, save_checkpoint
from netcarve.train.front import FRONT_FILE, OBJECTIVES, EpochFront, FrontMember
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
    #: a model with learned quantizers: the epochs on the (validation accuracy, EBOPs) front, fewest EBOPs
    #: first, with their checkpoints and firmware estimates (empty for any other model)
    front: tuple[FrontMember, ...] = ()
    #: why the front has no firmware estimates (alkaid missing, or the model not exportable)
    front_note: str | None = None


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


def estimated_front(
    members: list[FrontMember], model: str | None, info: DatasetInfo
) -> tuple[list[FrontMember], str | None]:
    """``members`` with alkaid's LUTs and latency of each checkpoint's (frozen) graph; without them, and the
    reason in one line, when alkaid is missing or the model cannot be exported."""
    from netcarve.analysis.fpga import FpgaUnavailableError, fpga_costs, require_estimator

    if not members:
        return members, None
    try:
        require_estimator()
        estimated = []
        for member in members:
            costs = fpga_costs(load_graph(member.file, model, info), per_layer=False)
            estimated.append(member.with_fpga(costs.total_luts, costs.total_latency))
    except FpgaUnavailableError as exc:
        return members, str(exc)
    except NetcarveError as exc:  # e.g. a layer the firmware has no step for: training still succeeded
        return members, f"no fpga estimates of the front: {exc}"
    return estimated, None


def write_front(run_dir: Path, members: list[FrontMember], note: str | None) -> list[dict[str, Any]]:
    """Write ``front.json`` (the objectives, each member, and the note when estimates are missing); the members
    as listed there."""
    listed = [m.as_dict(run_dir) for m in members]
    data: dict[str, Any] = {"objectives": dict(OBJECTIVES), "members": listed}
    if note is not None:
        data["fpga_note"] = note
    (run_dir / FRONT_FILE).write_text(json.dumps(data, indent=2) + "\n")
    return listed


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
        front = EpochFront(run_dir)

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
            if front.offer(record, graph, meta):
                log.info("epoch %d joins the front (now %d on it)", record.epoch, len(front.members))

        result = fit(graph.module, splits, train_config(self.config), on_epoch=on_epoch, on_step=on_step)
        best = load_graph(run_dir / "best.pt", self.config.model, splits.info)
        evaluations = {name: evaluate(best.module, splits.split(name)) for name in SPLITS}
        metrics: dict[str, Any] = {
            "final_train_loss": result.final.train_loss,
            "best_epoch": result.best_epoch,
            "steps": result.steps,
            **({"final_ebops": result.final.ebops} if result.final.ebops is not None else {}),
            **{f"{s}_{k}": v for s, r in evaluations.items() for k, v in r.as_dict().items()},
        }
        members, note = estimated_front(front.sorted(), self.config.model, splits.info)
        if note is not None:
            log.warning("%s", note)
        if members:
            metrics["front"] = write_front(run_dir, members, note)
        write_metrics(run_dir, metrics)
        return TrainOutcome(self.config, run_dir, splits.info, result, evaluations, metrics, tuple(members), note)


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
