"""``netcarve transform``: run the config's ``[passes.*]`` in file order; write the transformed checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from netcarve.cli.common import console, handle_errors, setup_logging
from netcarve.cli.train import ConfigOpt, DatasetArg, ModelArg, SetOpt, VerboseOpt, check_batch_size

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
        return module.quant[operand].describe(module.quant_value(operand))
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
        verbose: VerboseOpt = False,
    ) -> None:
        """Apply the config's \\[passes.*] tables in file order; write the transformed checkpoint.

        Prints each layer's precision before and after, and model size, BitOPs and accuracy before and
        after. Training the written checkpoint (netcarve train --load) is quantization-aware training.
        """
        setup_logging(verbose)
        check_batch_size(batch_size)
        from netcarve.configure import build_config
        from netcarve.transforms.api import run_transform

        cfg = build_config(config, {"model": model, "dataset": dataset}, set_ or [])
        outcome = run_transform(cfg, str(load) if load else None, output, split, batch_size)
        console.print(layer_table(outcome.before, outcome.after))
        console.print(summary_table(outcome.metrics_before, outcome.metrics_after, outcome.split))
        console.print(f"transformed checkpoint: {outcome.checkpoint} (run dir {outcome.run_dir})", highlight=False)
