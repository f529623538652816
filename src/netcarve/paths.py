"""Checks of the paths a user gives: where a file is read, a directory is named as such, never read; where
a file or a directory is written, a path through an existing file (``afile/x``) is one clear error naming the
path as the user typed it, raised before anything is written (:func:`output_file`, :func:`output_dir`,
:func:`make_dirs`)."""

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


def _through_file(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a directory (a file, or a link to one)."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return None if parent.is_dir() else parent
    return None


def _blocked(p: Path, what: str, error: type[NetcarveError]) -> None:
    blocker = _through_file(p)
    if blocker is not None:
        raise error(f"{what} {str(p)!r} cannot be written: {str(blocker)!r} is a file, not a directory")


def output_file(path: str | Path, what: str, error: type[NetcarveError]) -> Path:
    """``path`` unless it is a directory or lies under a file (then ``error``): the check before writing a
    file there. An existing file is returned (whether to overwrite it is the caller's decision)."""
    p = Path(path)
    if p.is_dir():
        raise error(f"{what} {str(p)!r} is a directory; give the path of a file to write")
    _blocked(p, what, error)
    return p


def output_dir(path: str | Path, what: str, error: type[NetcarveError]) -> Path:
    """``path`` unless a directory cannot be made there: it is a file, or lies under one (then ``error``)."""
    p = Path(path)
    if (p.exists() or p.is_symlink()) and not p.is_dir():
        raise error(f"{what} {str(p)!r} is a file, not a directory")
    _blocked(p, what, error)
    return p


def make_dirs(path: str | Path, what: str, error: type[NetcarveError]) -> Path:
    """Create the directory ``path`` and its parents (an existing one is fine): :func:`output_dir`'s check,
    then any OSError (permissions, a read-only file system) as ``error`` naming ``path`` as given."""
    p = output_dir(path, what, error)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create {what} {str(p)!r}: {exc.strerror or exc}") from exc
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
