"""``netcarve export``: a quantized checkpoint or a search's best trial to firmware, checked bit for bit."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from netcarve.cli.common import console, handle_errors, setup_logging
from netcarve.cli.search import StorageOpt
from netcarve.cli.train import VerboseOpt


def _figure(value: object) -> str:
    """A backend figure as printed: floats to 6 significant digits (alkaid's cost
    6929.52000000001 → 6929.52), lists element by element."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(_figure(v) for v in value) + "]"
    return str(value)


def register(app: typer.Typer) -> None:
    @app.command("export")
    @handle_errors
    def export_cmd(
        source: Annotated[Path, typer.Argument(help="A transformed checkpoint (.pt) or a search run dir.")],
        to: Annotated[
            str, typer.Option("--to", help="Backend: alkaid or hls4ml (da4ml: a deprecated alias of alkaid).")
        ],
        output: Annotated[Path, typer.Option(help="Directory to write (must not exist, unless --force).")],
        trial: Annotated[
            int | None, typer.Option(help="Trial number of a search run dir (default: its best trial, best.pt).")
        ] = None,
        force: Annotated[bool, typer.Option(help="Replace the output directory if it exists.")] = False,
        part: Annotated[
            str | None, typer.Option(help="FPGA part (hls4ml); its spelling is checked, not whether it exists.")
        ] = None,
        default_precision: Annotated[
            str | None, typer.Option(help="Precision for layers left float (hls4ml), e.g. ap_fixed<16,6>.")
        ] = None,
        flavor: Annotated[
            str | None, typer.Option(help="Code alkaid generates: verilog (default), vhdl or vitis (HLS C++).")
        ] = None,
        simulate: Annotated[
            bool,
            typer.Option(
                help="Also build the generated design (Verilator; GHDL first for VHDL; g++ for Vitis) and run it on "
                "the check's rows (alkaid)."
            ),
        ] = False,
        split: Annotated[str, typer.Option(help="Split for the check: train, val or test.")] = "test",
        dataset: Annotated[
            str | None,
            typer.Option(
                help="Dataset for the check (default: the source's); the run's own dataset file, moved, is "
                "recognised by its sha256."
            ),
        ] = None,
        model: Annotated[
            str | None,
            typer.Option(
                "--model",
                help="The source's model file (file.py or file.py:callable), moved since it was made; it must "
                "have the sha256 the source records.",
            ),
        ] = None,
        storage: StorageOpt = None,
        verbose: VerboseOpt = False,
    ) -> None:
        """Write firmware for a quantized model and check it against netcarve on a dataset split.

        The exported design's inputs are quantized by netcarve's first input quantizer (the input port);
        the check prints the largest difference from netcarve's fake-quantized forward pass and the argmax
        agreement and writes them to OUTPUT/export.json. A fully fixed-point model must match bit for bit:
        otherwise the export fails with exit code 1 (the files are kept for inspection).
        """
        setup_logging(verbose)
        from netcarve.export.api import export
        from netcarve.export.backends import ExportOptions
        from netcarve.search.lookup import run_model

        outcome = export(
            source,
            to,
            output,
            trial=trial,
            force=force,
            options=ExportOptions(part=part, default_precision=default_precision, flavor=flavor, simulate=simulate),
            split=split,
            dataset=dataset,
            run_reader=functools.partial(run_model, storage_url=storage, model=model, dataset=dataset),
            model=model,
        )
        figures = ", ".join(f"{k} {_figure(v)}" for k, v in outcome.figures.items())
        console.print(f"port: {outcome.program.port.describe()} × {outcome.program.in_features}", highlight=False)
        if figures:
            console.print(f"{outcome.backend}: {figures}", highlight=False)
        for note in outcome.summary.get("notes", []):
            console.print(f"note: {note}", highlight=False, soft_wrap=True)
        console.print(outcome.check_line() + (" (bit-exact)" if outcome.exact else ""), highlight=False)
        simulation = outcome.summary.get("simulation")
        if simulation:
            console.print(
                f"simulated {simulation['flavor']} design ({simulation['simulator']}): max |diff| = "
                f"{simulation['max_abs_diff']:g}, argmax agreement {100 * simulation['argmax_agreement']:.2f} %"
                + (" (bit-exact)" if simulation["bit_exact"] else ""),
                highlight=False,
            )
        fold_line = outcome.fold_line()
        if fold_line is not None:
            console.print(fold_line, highlight=False, soft_wrap=True)
        files = ", ".join(str(outcome.directory / f) for f in outcome.files.values())
        console.print(f"wrote {files}", highlight=False, soft_wrap=True)
