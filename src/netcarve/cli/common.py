"""Helpers shared by the CLI commands: error handling (one line, exit 2), consoles, logging set-up."""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)


def setup_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    from netcarve.redact import RedactingFilter

    level = logging.DEBUG if verbose else logging.INFO
    handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    for noisy in ("optuna", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interruption so that the same clean-up runs as for Ctrl-C."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signum}")


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Within this block SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    from netcarve.redact import redact_text

    err_console.print(f"[bold red]error:[/] {escape(redact_text(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _show_chain(exc: BaseException) -> None:
    """With --verbose (log level DEBUG): the whole chain of causes, tracebacks included."""
    import traceback

    from netcarve.redact import redact_text

    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        err_console.print(redact_text("".join(traceback.format_exception(exc))), highlight=False, markup=False)


def handle_errors(fn: F) -> F:
    """Turn netcarve errors into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from netcarve.errors import NetcarveError

        try:
            return fn(*args, **kwargs)
        except NetcarveError as exc:
            _show_chain(exc)
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
