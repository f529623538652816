"""The integer quantizer fused into one pass (``csrc/fixed_quantize.cpp``), built once and loaded on demand.

In eager PyTorch the quantizer is a chain of elementwise ops (scale, round, clamp or wrap, step, and the
straight-through mask: about six passes over the values and as many temporaries); the C++ kernel computes the
same floating-point operations per element in one pass, so its output and mask are equal to the chain's bit
for bit but for a zero's sign, which torch's own clamp leaves to its vector blocks (``tests/ir/test_fused.py``
checks every mode pair, both dtypes and the broadcast shapes of scalar,
per-channel, per-member and per-element grids). :func:`netcarve.ir.fixedpoint.fixed_quantize` calls it for CPU
float32/float64 values whenever it is available, else the chain.

The kernel is compiled by ``torch.utils.cpp_extension`` (g++, and ninja from the dependencies) into
``netcarve/`` under torch's extension directory, named by a digest of the source, the flags and the CPU;
``make setup`` builds it (``python -m netcarve.ir.fused``), so a run only imports the library (no compiler,
no lock). When it cannot be built or loaded, the chain is used and one INFO line says why;
``NETCARVE_FUSED=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "fixed_quantize.cpp"
#: the environment variable that turns the kernel off ("0")
SWITCH = "NETCARVE_FUSED"

_lock = threading.Lock()
_state: dict[str, Any] = {}


#: compiled for this machine's CPU (``-march=native``: the loop vectorizes); ``-fopenmp-simd`` honours the loop's
#: ``omp simd`` without an OpenMP runtime
CFLAGS = ["-O3", "-march=native", "-fopenmp-simd"]


def _cpu_flags() -> bytes:
    """The CPU's feature flags (Linux), part of the build's name: a build for one CPU is never loaded on
    another that lacks its instructions (a shared home directory)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return b""
    return next((line.encode() for line in text.splitlines() if line.startswith("flags")), b"")


def _name() -> str:
    """The extension's name: a digest of the source, the flags and the CPU in it, so any change builds anew."""
    digest = hashlib.blake2b(SOURCE.read_bytes() + repr(CFLAGS).encode() + _cpu_flags(), digest_size=6)
    return f"netcarve_fixed_{digest.hexdigest()}"


def kernel() -> Any | None:
    """The compiled module (its ``fixed_quantize``), or None when it is off or cannot be built (logged once)."""
    found = _state.get("module", _state)
    if found is not _state:
        return found
    with _lock:
        if "module" not in _state:
            _state["module"] = _load()
    return _state["module"]


def build_root() -> Path:
    """Where the built kernels live: ``netcarve/`` under torch's extension directory (``TORCH_EXTENSIONS_DIR``
    when set)."""
    from torch.utils import cpp_extension

    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()) / "netcarve"


def _load() -> Any | None:
    if os.environ.get(SWITCH, "1") == "0":
        log.debug("fused quantizer off (%s=0)", SWITCH)
        return None
    try:
        name = _name()
        built = build_root() / f"{name}.so"
        if built.is_file():
            return _import(name, built)
        return _build(name, built)
    except Exception as exc:  # a missing compiler or ninja, a failed build: the op chain does the same
        log.info("the fused quantizer kernel is not available (%s: %s); the quantizer runs as PyTorch ops",
                 type(exc).__name__, str(exc).strip().splitlines()[-1] if str(exc).strip() else "")  # fmt: skip
        return None


def _import(name: str, path: Path) -> Any:
    """The built extension module at ``path`` (its init function is ``PyInit_<name>``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(name: str, built: Path) -> Any:
    """Compile the kernel in a build directory of this process's own, then move the library into place
    atomically: no lock is shared, so a build killed outright (SIGKILL) leaves nothing another run would wait
    for; two processes building at once each finish, and the last move wins (the same library)."""
    from torch.utils import cpp_extension

    log.info("building the fused quantizer kernel (once for this CPU and source, about 30 s)")
    built.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=built.parent) as work, _ninja_on_path():
        module = cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=CFLAGS, build_directory=work,
                                    verbose=False)  # fmt: skip
        os.replace(Path(work) / f"{name}.so", built)
    return module


@contextlib.contextmanager
def _ninja_on_path() -> Iterator[None]:
    """The ``ninja`` package's binary first on PATH while the extension builds (torch runs ``ninja``; the
    package is a dependency, its directory need not be on PATH when the venv's python is run directly)."""
    try:
        import ninja
    except ImportError:
        yield
        return
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, old]) if old else ninja.BIN_DIR
    try:
        yield
    finally:
        os.environ["PATH"] = old


def available() -> bool:
    return kernel() is not None


if __name__ == "__main__":  # make setup: build once, so that runs only load it
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("fused quantizer kernel: %s", "built" if available() else "not available (the op chain is used)")
