"""``netcarve transform``: run the config's ``[passes.*]`` in file order; write the transformed checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from netcarve.cli.common import console, handle_errors, setup_logging
from netcarve.cli.train import ConfigOpt, DatasetArg, ModelArg, SetOpt, check_batch_size

if TYPE_CHECKING:
    from netcarve.ir.graph import Graph

#: operands shown per layer
TABLE_OPERANDS = ("data_in", "weight", "bias", "data_out")


def _operand_text(graph: Graph, node: Any, operand: str) -> str:
    from netcarve.transforms.quantize.modules import QuantizedModule
    from netcarve.transforms.quantize.plan import QUANT_OPERANDS

    meta = graph.meta(node)
    if operand not in QUANT_OPERANDS.get(meta.kind, ("data_in", "data_out")):
        return "-"
    module = graph.submodule(node) if node.op == "call_module" else None
    if isinstance(module, QuantizedModule) and operand in module.quant:
        return module.quant[operand].describe()
    return meta.operand_precision(operand).describe()


def layer_table(before: Graph, after: Graph) -> Table:
    """One row per node of the transformed graph: operand precisions, ``before → after`` when changed."""
    table = Table(title="layers (precision before → after; u… = unsigned)")
    for column in ("node", "kind", "module", *TABLE_OPERANDS):
        table.add_column(column)
    old_names = set(before.node_names())
    for node in after.compute_nodes():
        cells = []
        for operand in TABLE_OPERANDS:
            new = _operand_text(after, node, operand)
            old = _operand_text(before, before.node(node.name), operand) if node.name in old_names else "-"
            cells.append(new if old == new else f"{old} → [bold]{new}[/]")
        meta = after.meta(node)
        table.add_row(node.name, meta.kind, meta.target, *cells)
    return table


def _measure(graph: Graph, split: Any, batch_size: int) -> dict[str, float]:
    from netcarve import analyze
    from netcarve.train import evaluate

    report = analyze(graph, (1, *graph.input_shape))
    result = evaluate(graph.module, split, batch_size)
    return {
        "size_bits": report.total.size_bits,
        "model_size": report.total.model_size,
        "bitops": report.total.bitops,
        "accuracy": result.accuracy,
        "loss": result.loss,
    }


def summary_table(before: dict[str, float], after: dict[str, float], split: str) -> Table:
    table = Table(title=f"before / after (bitops per sample; accuracy and loss on {split})")
    for column in ("metric", "before", "after", "after / before"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, old in before.items():
        new = after[key]
        fmt = "{:.4f}" if isinstance(old, float) else "{:,}"
        ratio = f"{new / old:.3f}" if old else "-"
        table.add_row(key, fmt.format(old), fmt.format(new), ratio)
    return table


def register(app: typer.Typer) -> None:
    @app.command("transform")
    @handle_errors
    def transform_cmd(
        model: ModelArg = None,
        dataset: DatasetArg = None,
        config: ConfigOpt = None,
        load: Annotated[Path | None, typer.Option(help="Checkpoint to transform (else a fresh, seeded model).")] = None,
        output: Annotated[
            Path | None,
            typer.Option(help="Where to write the transformed checkpoint (default: in the run dir)."),
        ] = None,
        split: Annotated[str, typer.Option(help="Split for accuracy before/after: train, val or test.")] = "val",
        batch_size: Annotated[int, typer.Option(help="Evaluation batch size.")] = 8192,
        set_: SetOpt = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    ) -> None:
        """Apply the config's \\[passes.*] tables in file order; write the transformed checkpoint.

        Prints each layer's precision before and after, and model size, BitOPs and accuracy before and
        after. Training the written checkpoint (netcarve train --load) is quantization-aware training.
        """
        setup_logging(verbose)
        check_batch_size(batch_size)
        from netcarve.config import build_config
        from netcarve.errors import CheckpointError, ConfigError
        from netcarve.paths import output_file
        from netcarve.train import save_checkpoint
        from netcarve.transforms.replay import apply_transforms
        from netcarve.workflow import initial_graph, load_splits, start_run

        cfg = build_config(config, {"model": model, "dataset": dataset}, set_ or [])
        if not cfg.passes:
            raise ConfigError("the config has no passes table (e.g. passes.quantize): nothing to transform")
        if output is not None and output_file(output, "--output", CheckpointError).exists():
            raise CheckpointError(f"output {str(output)!r} already exists; choose another path (nothing was written)")
        splits = load_splits(cfg)
        part = splits.split(split)
        before = initial_graph(cfg, splits, str(load) if load else None)
        after = apply_transforms(before, list(cfg.passes.items()))
        metrics_before = _measure(before, part, batch_size)
        metrics_after = _measure(after, part, batch_size)
        run_dir = start_run(cfg, "transform", splits)
        path = output if output is not None else run_dir / "transformed.pt"
        meta = {
            "command": "transform",
            "source": str(load) if load else None,
            "split": split,
            "after": metrics_after,
        }
        save_checkpoint(path, after, meta)
        payload = {"checkpoint": str(path), "split": split, "before": metrics_before, "after": metrics_after}
        (run_dir / "metrics.json").write_text(json.dumps(payload, indent=2) + "\n")
        console.print(layer_table(before, after))
        console.print(summary_table(metrics_before, metrics_after, split))
        console.print(f"transformed checkpoint: {path} (run dir {run_dir})", highlight=False)
