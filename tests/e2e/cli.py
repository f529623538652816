"""What the end-to-end tests share: the repository paths and one in-process CLI call."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from netcarve.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
_runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    """``netcarve ARGS`` in this process: (exit code, combined output)."""
    result = _runner.invoke(app, list(args))
    return result.exit_code, result.output
