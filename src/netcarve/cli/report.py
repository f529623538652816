"""``netcarve report RUN_DIR``: the HTML report of a search run (written by every search, too)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from netcarve.cli.common import console, handle_errors


def register(app: typer.Typer) -> None:
    @app.command("report")
    @handle_errors
    def report_cmd(
        run_dir: Annotated[Path, typer.Argument(help="A search run dir (with trials.csv and best.json).")],
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Default: RUN_DIR/report.html.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    ) -> None:
        """Write the HTML report of a search run (every search also writes RUN_DIR/report.html).

        One self-contained page with inline SVG: best trials, Pareto plot, history, every trial.
        """
        from netcarve.report import write_report

        path = write_report(run_dir, output, force)
        console.print(f"report: {path}", highlight=False)
