"""Checks of the paths a user gives where a file is expected: a directory is named as such, never read."""

from __future__ import annotations

from pathlib import Path

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
