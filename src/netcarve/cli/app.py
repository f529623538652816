"""The ``netcarve`` typer application. Commands import torch lazily, so ``netcarve --help`` is fast."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from netcarve import __version__

app = typer.Typer(
    name="netcarve",
    help="Hardware-aware design-space exploration of small neural networks (JSC MLPs for FPGA triggers).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

#: modules under netcarve.cli that contribute commands through ``register(app)``
COMMAND_MODULES = ("train", "info", "analyze", "transform", "search", "report", "compare", "export")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"netcarve {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """netcarve: train, analyze, transform and search small networks."""


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"netcarve.cli.{_name}")
    except ModuleNotFoundError as _exc:  # a command module that is not part of this build
        if _exc.name != f"netcarve.cli.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
