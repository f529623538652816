"""``netcarve transform`` as a library call: run a config's ``[passes.*]`` in file order on a model, measure
it before and after, and write the transformed checkpoint and the run dir. No printing: the CLI renders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netcarve.config.run import RunConfig
from netcarve.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from netcarve.data.base import Split
    from netcarve.ir.graph import Graph

#: what is measured before and after, in this order
MEASURES = ("size_bits", "model_size", "bitops", "accuracy", "loss")


@dataclass(frozen=True)
class TransformOutcome:
    config: RunConfig
    run_dir: Path
    #: the transformed checkpoint written
    checkpoint: Path
    #: the split that accuracy and loss are measured on
    split: str
    before: Graph
    after: Graph
    #: :data:`MEASURES` of ``before`` and ``after`` (bitops per sample)
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]


def measure(graph: Graph, split: Split, batch_size: int) -> dict[str, float]:
    """Size, BitOPs (one sample) and accuracy and loss on ``split``: the :data:`MEASURES` of ``graph``."""
    from netcarve import analyze
    from netcarve.train.loop import evaluate

    report = analyze(graph, (1, *graph.input_shape))
    result = evaluate(graph.module, split, batch_size)
    return {
        "size_bits": report.total.size_bits,
        "model_size": report.total.model_size,
        "bitops": report.total.bitops,
        "accuracy": result.accuracy,
        "loss": result.loss,
    }


def run_transform(
    config: RunConfig,
    load: str | None = None,
    output: Path | None = None,
    split: str = "val",
    batch_size: int = 8192,
) -> TransformOutcome:
    """Transform ``load`` (or a fresh, seeded model) with ``config.passes``; write the checkpoint to ``output``
    (default: ``transformed.pt`` in the run dir) and ``metrics.json``. An existing ``output`` is refused
    before anything is loaded."""
    from netcarve.ir.replay import apply_transforms
    from netcarve.paths import output_file
    from netcarve.train.api import write_metrics
    from netcarve.train.checkpoint import save_checkpoint
    from netcarve.workflow import initial_graph, load_splits, start_run

    if not config.passes:
        raise ConfigError("the config has no passes table (e.g. passes.quantize): nothing to transform")
    if output is not None and output_file(output, "--output", CheckpointError).exists():
        raise CheckpointError(f"output {str(output)!r} already exists; choose another path (nothing was written)")
    splits = load_splits(config)
    part = splits.split(split)
    before = initial_graph(config, splits, load)
    after = apply_transforms(before, list(config.passes.items()))
    metrics_before = measure(before, part, batch_size)
    metrics_after = measure(after, part, batch_size)
    run_dir = start_run(config, "transform", splits)
    path = output if output is not None else run_dir / "transformed.pt"
    meta = {"command": "transform", "source": load, "split": split, "after": metrics_after}
    save_checkpoint(path, after, meta)
    payload = {"checkpoint": str(path), "split": split, "before": metrics_before, "after": metrics_after}
    write_metrics(run_dir, payload)
    return TransformOutcome(config, run_dir, path, split, before, after, metrics_before, metrics_after)
