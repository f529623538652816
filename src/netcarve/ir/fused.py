"""The integer quantizer fused into one pass (``csrc/fixed_quantize.cpp``), built once and loaded on demand.

In eager PyTorch the quantizer is a chain of elementwise ops (scale, round, clamp or wrap, step, and the
straight-through mask: about six passes over the values and as many temporaries); the C++ kernel computes the
same floating-point operations per element in one pass, so its output and mask are equal to the chain's bit
for bit but for a zero's sign, which torch's own clamp leaves to its vector blocks (``tests/ir/test_fused.py``
checks every mode pair, both dtypes and the broadcast shapes of scalar,
per-channel, per-member and per-element grids). :func:`netcarve.ir.fixedpoint.fixed_quantize` calls it for CPU
float32/float64 values whenever it is available, else the chain.

The kernel is compiled by ``torch.utils.cpp_extension`` (g++ and ninja, which the ``dev`` extra installs) into
torch's extension cache, keyed by the source; ``make setup`` builds it (``python -m netcarve.ir.fused``), so a
run only loads it. When it cannot be built or loaded, the chain is used and one INFO line says why;
``NETCARVE_FUSED=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "fixed_quantize.cpp"
#: the environment variable that turns the kernel off ("0")
SWITCH = "NETCARVE_FUSED"

_lock = threading.Lock()
_state: dict[str, Any] = {}


#: a build lock older than this is a killed build's (see :func:`_drop_stale_lock`)
STALE_LOCK_SECONDS = 600
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


def _load() -> Any | None:
    if os.environ.get(SWITCH, "1") == "0":
        log.debug("fused quantizer off (%s=0)", SWITCH)
        return None
    try:
        from torch.utils import cpp_extension

        name = _name()
        _drop_stale_lock(Path(cpp_extension.get_default_build_root()) / name / "lock")
        with _ninja_on_path():
            return cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=CFLAGS, verbose=False)
    except Exception as exc:  # a missing compiler or ninja, a failed build: the op chain does the same
        log.info("the fused quantizer kernel is not available (%s: %s); the quantizer runs as PyTorch ops",
                 type(exc).__name__, str(exc).strip().splitlines()[-1] if str(exc).strip() else "")  # fmt: skip
        return None


def _drop_stale_lock(lock: Path) -> None:
    """torch takes a lock file while it builds an extension, and every other process waits for it to go; a
    build killed outright (SIGKILL, a crash) leaves it behind and every later run would wait forever. A lock
    older than :data:`STALE_LOCK_SECONDS` (a build takes about 30 s) is removed, with a warning."""
    try:
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return
    if age > STALE_LOCK_SECONDS:
        log.warning("removing %s, left %.0f s ago by a build of the fused quantizer that did not finish", lock, age)
        lock.unlink(missing_ok=True)


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
    print(f"fused quantizer kernel: {'built' if available() else 'not available (the op chain is used)'}")
