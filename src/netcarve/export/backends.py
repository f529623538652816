"""Export backends (``netcarve export --to NAME``): one registry entry each.

A backend turns a :class:`~netcarve.export.program.Program` into firmware files in a directory and returns
a :class:`BackendResult` whose ``predict`` runs the exported design (alkaid's bit-exact interpreter, hls4ml's
compiled C simulation) on port values, so the export can be checked against netcarve.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from netcarve.errors import NetcarveError
from netcarve.registry import Registry

#: the pip extra that installs every backend
EXTRA = "netcarve[fpga]"


@dataclass(frozen=True)
class ExportOptions:
    """Settings a backend may read: the FPGA part (hls4ml), a precision for float layers (hls4ml only), the
    generated code's flavor (alkaid: verilog, vhdl or vitis), and whether to simulate the generated design on
    the check's rows (alkaid)."""

    part: str | None = None
    default_precision: str | None = None
    flavor: str | None = None
    simulate: bool = False


@dataclass
class BackendResult:
    """What a backend wrote and how to run it."""

    #: runs the exported design on port values (rows of ``in_features`` values on the port's grid)
    predict: Callable[[np.ndarray], np.ndarray]
    #: file or directory name → path, relative to the output directory
    files: dict[str, str] = field(default_factory=dict)
    #: backend figures for export.json (e.g. alkaid's cost and latency estimates)
    figures: dict[str, Any] = field(default_factory=dict)
    #: what the user should know about the export (e.g. that hls4ml does not check the part): printed, and
    #: in export.json
    notes: list[str] = field(default_factory=list)
    #: the generated project as the backend's own object (alkaid's RTLModel or HLSModel), for ``--simulate``
    design: Any = None
    #: the output directory ``files`` are relative to (set by a backend whose design can be simulated)
    directory: Path | None = None


@dataclass(frozen=True)
class Backend:
    name: str
    #: the Python package the backend needs (checked before anything is written)
    package: str
    write: Callable[..., BackendResult]  # (program, directory, options) -> BackendResult
    #: whether float layers are allowed (with ``ExportOptions.default_precision``)
    allows_float: bool = False
    #: raises a one-line error for a program the backend cannot write (run before anything is written)
    check: Callable[..., None] | None = None  # (program) -> None
    #: raises a one-line error for options the backend cannot honour (e.g. an unknown --flavor), before
    #: anything is loaded
    check_options: Callable[..., None] | None = None  # (options) -> None
    #: the backend this name now runs (a deprecated name kept for a release), and what to tell the user
    alias_of: str | None = None
    notes: tuple[str, ...] = ()
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


BACKENDS: Registry[Backend] = Registry("export backend")


class MissingBackendError(NetcarveError):
    """The package a backend needs is not installed."""


def require_package(backend: Backend) -> None:
    """A one-line error naming the extra to install when the backend's package is missing."""
    if importlib.util.find_spec(backend.package) is None:
        raise MissingBackendError(
            f"exporting to {backend.name} needs the {backend.package!r} package: pip install '{EXTRA}'"
        )


def relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root))
