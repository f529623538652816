"""``netcarve models`` and ``netcarve datasets``: list the registries."""

from __future__ import annotations

import typer
from rich.table import Table

from netcarve.cli.common import console, handle_errors


def register(app: typer.Typer) -> None:
    @app.command("models")
    @handle_errors
    def models_cmd() -> None:
        """List the registered models (a user model is 'module:callable' or 'file.py:callable')."""
        from netcarve.catalog import model_rows

        table = Table(title="models")
        table.add_column("name")
        table.add_column("params (JSC)", justify="right")
        table.add_column("description")
        for row in model_rows():
            table.add_row(row.name, str(row.jsc_params), row.description)
        console.print(table)

    @app.command("datasets")
    @handle_errors
    def datasets_cmd() -> None:
        """List the datasets (a local .csv/.parquet/.npz/.h5 path is read as JSC)."""
        from netcarve.data import DATASETS, READERS

        table = Table(title="datasets")
        table.add_column("name")
        table.add_column("description")
        for entry in DATASETS.entries():
            table.add_row(entry.name, entry.description)
        console.print(table)
        console.print("local JSC files: " + ", ".join(READERS.names()), highlight=False)
