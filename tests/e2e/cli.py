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


def run_error(*args: str) -> str:
    """``netcarve ARGS``, which must fail on bad input as the CLI promises: exit code 2, exactly one non-empty
    line on stderr starting with ``error:``, no traceback. Returns that line."""
    result = _runner.invoke(app, list(args))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, f"exit code {result.exit_code}: {result.output}"
    assert not isinstance(result.exception, Exception), result.exception  # SystemExit is not an Exception
    assert "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), f"stderr is not one error line: {result.stderr!r}"
    return lines[0]
