"""Checks of the paths a user gives where a file is expected: a directory is named as such, never read."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netcarve.errors import NetcarveError


def existing_file(path: str | Path, what: str, error: type[NetcarveError]) -> Path:
    """``path`` when it is a readable-looking file; else ``error`` saying it is a directory or is missing.

    ``what`` names the file for the user, e.g. "config file" → ``config file 'x' is a directory, not a file``.
    """
    p = Path(path)
    if p.is_dir():
        raise error(f"{what} {str(p)!r} is a directory, not a file")
    if not p.exists():
        raise error(f"{what} {str(p)!r} does not exist")
    if not p.is_file():
        raise error(f"{what} {str(p)!r} is not a regular file")
    return p


def output_file(path: str | Path, what: str, error: type[NetcarveError]) -> Path:
    """``path`` unless it is a directory (then ``error``): the check before writing a file there."""
    p = Path(path)
    if p.is_dir():
        raise error(f"{what} {str(p)!r} is a directory; give the path of a file to write")
    return p


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``: a reader (or a
    process killed in the middle) never sees a half-written file. Returns ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON (anything else as its ``str``), written atomically."""
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))
