"""Shared fixtures of the analysis tests."""

from __future__ import annotations

import pytest
import typer

from netcarve.cli.analyze import register


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """``netcarve analyze`` alone in a throwaway typer app (no other command is imported)."""
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """Test app."""

    register(app)
    return app
