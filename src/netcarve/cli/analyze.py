"""``netcarve analyze MODEL DATASET``: per-layer params, size, MACs/FLOPs/BitOPs, memory, latency and (``--fpga``)
alkaid's firmware estimates."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from netcarve.cli.common import console, fail, handle_errors

if TYPE_CHECKING:
    from netcarve.analysis.records import Report
    from netcarve.data.base import DatasetInfo
    from netcarve.ir.graph import Graph

CONVENTIONS = ("netcarve", "mase")
#: datasets whose shape is known without loading them (analysis needs only the shape)
_SCHEMA_ONLY = ("jsc", "synthetic-jsc")
#: width of the table when it is written to a file or a pipe
TABLE_WIDTH = 200


def _dataset_info(spec: str) -> DatasetInfo:
    from netcarve.data import load_dataset, parse_dataset_spec
    from netcarve.data.jsc_schema import jsc_info

    name, _ = parse_dataset_spec(spec)
    return jsc_info(name) if name in _SCHEMA_ONLY else load_dataset(spec).info


#: the most elements one sample of --input-shape may have (shapes are recorded on real zeros)
MAX_SAMPLE_ELEMENTS = 1 << 24


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``1,8,8``, ``1x8x8`` or ``(1, 8, 8)``: one sample's shape (no batch), positive integers."""
    body = text.strip().removeprefix("(").removesuffix(")").strip()
    parts = re.split(r"\s*[,x×]\s*", body) if body else []
    if not parts or not all(re.fullmatch(r"[0-9]+", p) and int(p) > 0 for p in parts):
        fail(
            "--input-shape must be one sample's shape without the batch: positive integers separated by ',' "
            f"or 'x', e.g. 1,8,8 or 1x8x8 (got {text!r})"
        )
    shape = tuple(int(p) for p in parts)
    if math.prod(shape) > MAX_SAMPLE_ELEMENTS:
        fail(f"--input-shape {text} has {math.prod(shape):,} elements per sample; at most {MAX_SAMPLE_ELEMENTS:,}")
    return shape


def _graph(
    model: str, info: DatasetInfo, load: Path | None, input_shape: tuple[int, ...] | None, batch_size: int
) -> Graph:
    if load is not None:
        from netcarve.train.checkpoint import load_graph

        return load_graph(load, model, info)
    from netcarve.analysis.api import annotation_batch
    from netcarve.ir.graph import Graph, ModelSpec
    from netcarve.models import create_model

    sample = input_shape or (info.in_features,)
    module = create_model(model, info, input_shape)
    batch = annotation_batch((batch_size, *sample))
    return Graph.from_module(module, sample, ModelSpec(model, info.to_dict()), batch_size=batch)


def _write(report: Report, fmt: str, title: str, output: Path | None) -> None:
    """Text formats verbatim; the table to the terminal at its width, to a pipe or ``output`` at TABLE_WIDTH
    (never cut to 80 columns); the summary lines below it are never broken."""
    from rich.console import Console

    from netcarve.analysis.render import RENDERERS

    rendered = RENDERERS.get(fmt)(report, title)
    if isinstance(rendered, str):
        if output is None:
            typer.echo(rendered, nl=False)
        else:
            output.write_text(rendered, encoding="utf-8")
    elif output is not None:
        with output.open("w", encoding="utf-8") as handle:
            Console(file=handle, width=TABLE_WIDTH, no_color=True).print(rendered, soft_wrap=True)
    else:
        (console if console.is_terminal else Console(width=TABLE_WIDTH)).print(rendered, soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("analyze")
    @handle_errors
    def analyze_command(
        model: Annotated[str | None, typer.Argument(metavar="MODEL", help="Model name (or from --config).")] = None,
        dataset: Annotated[
            str | None, typer.Argument(metavar="DATASET", help="Dataset spec (or from --config).")
        ] = None,
        load: Annotated[Path | None, typer.Option("--load", help="Checkpoint whose graph to analyze.")] = None,
        config: Annotated[Path | None, typer.Option("--config", help="TOML config (model, dataset).")] = None,
        batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size B of the counts.")] = 1,
        latency: Annotated[bool, typer.Option("--latency", help="Also measure forward latency at B.")] = False,
        fpga: Annotated[
            bool,
            typer.Option(
                "--fpga",
                help="Also estimate the firmware with alkaid: fpga_luts and fpga_latency (ns) per "
                "layer and in total (the graph must be fixed-point quantized; needs netcarve[fpga]).",
            ),
        ] = False,
        fmt: Annotated[str, typer.Option("--format", help="Output format: table, json or csv.")] = "table",
        output: Annotated[Path | None, typer.Option("--output", help="Write to this file.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Overwrite --output if it exists.")] = False,
        convention: Annotated[str, typer.Option("--convention", help="netcarve or mase (seed report).")] = "netcarve",
        input_shape: Annotated[
            str | None,
            typer.Option(
                "--input-shape",
                help="One sample's shape without the batch (e.g. 1,8,8 or 1x8x8), for a model whose input is "
                "not the dataset's flat feature vector; the batch is --batch-size.",
            ),
        ] = None,
    ) -> None:
        """Per-layer params, size, MACs/FLOPs/BitOPs (forward and backward), memory and latency."""
        from netcarve.analysis.render import RENDERERS
        from netcarve.errors import ConfigError
        from netcarve.paths import output_file

        if fmt not in RENDERERS:
            fail(f"--format must be one of {', '.join(RENDERERS.names())} (got {fmt!r})")
        if convention not in CONVENTIONS:
            fail(f"--convention must be one of {', '.join(CONVENTIONS)} (got {convention!r})")
        if batch_size < 1:
            fail(f"--batch-size must be at least 1 (got {batch_size})")
        if output is not None:
            output_file(output, "--output", ConfigError)
        if output is not None and output.exists() and not force:
            fail(f"{output} exists; pass --force to overwrite it")
        sample = parse_input_shape(input_shape) if input_shape is not None else None
        if sample is not None and load is not None:
            fail("--input-shape analyzes a freshly built model; it cannot be combined with --load")

        from netcarve.analysis.api import analyze
        from netcarve.configure import build_config
        from netcarve.errors import NetcarveError

        cfg = build_config(config, overrides={"model": model, "dataset": dataset})
        if cfg.model is None or cfg.dataset is None:
            fail("give MODEL and DATASET as arguments or in --config")
        assert cfg.model is not None and cfg.dataset is not None
        info = _dataset_info(cfg.dataset)
        try:
            graph = _graph(cfg.model, info, load, sample, batch_size)
        except NetcarveError as exc:
            if sample is None:
                raise
            fail(f"--input-shape {input_shape}: {exc}", exc.exit_code)
        report = analyze(
            graph,
            (batch_size, *graph.input_shape),
            convention=convention,  # type: ignore[arg-type]
            latency=latency,
            fpga=fpga,
        )
        title = f"{cfg.model} on {cfg.dataset}"
        try:
            _write(report, fmt, title, output)
        except OSError as exc:
            fail(f"cannot write --output {str(output)!r}: {exc.strerror or exc}")
        if output is not None:
            console.print(f"wrote {output}", highlight=False)
