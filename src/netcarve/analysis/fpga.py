"""Firmware estimates from alkaid (README: Analyze): ``fpga_luts`` and ``fpga_latency``, per layer and total.

The quantized graph's fixed-point program (:func:`netcarve.export.program.build_program`) is traced by alkaid
(:func:`netcarve.export.alkaid.trace_program`) into the adder graphs of its constant multiplications.
alkaid's ``cost`` is its LUT estimate of that logic and ``max(latency)`` its estimate of the critical path's
delay, in ns (the combinational path, before pipelining): estimates, not a synthesis result. The package and
version that produced them is :data:`ESTIMATOR` (a search records it in its manifest).

The total is the trace of the whole program; a layer's numbers are the trace of that layer alone
(:meth:`~netcarve.export.program.Program.layer_programs`: its Dense between its input and output
quantizers), so the layers need not add up to the total exactly (ReLUs and quantizers between layers, and
latency is a critical path, not a sum).

Tracing takes 0.1–2 s, so results are kept in a small in-process LRU keyed by a digest of everything the
trace reads (formats, weights, biases and step order): a configuration a search meets again costs nothing.
alkaid is imported only when something is traced.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from netcarve.errors import NetcarveError

if TYPE_CHECKING:
    from netcarve.export.program import Format, Program
    from netcarve.ir.graph import Graph

log = logging.getLogger(__name__)

#: traced programs remembered per process (a cost is two floats; the key a 32-byte digest)
CACHE_SIZE = 512


class FpgaUnavailableError(NetcarveError):
    """alkaid, which the firmware estimates need, is not installed."""


@dataclass(frozen=True)
class FpgaCost:
    """alkaid's estimates of one traced program: LUTs, and the critical path's delay in ns."""

    luts: float
    latency: float


@dataclass(frozen=True)
class FpgaCosts:
    """The whole program's estimates and each Dense layer's (node → (luts, latency)), in graph order (empty
    when not asked for)."""

    total_luts: float
    total_latency: float
    per_layer: dict[str, tuple[float, float]]


_cache: OrderedDict[str, FpgaCost] = OrderedDict()
_lock = threading.Lock()


def _format_bytes(fmt: Format | None) -> bytes:
    """A format's bytes; per-element formats hash their arrays (shape and values) after a marker of their own."""
    if fmt is None:
        return b"-"
    if isinstance(fmt.width, np.ndarray):
        arrays = _array_bytes(fmt.width) + _array_bytes(fmt.frac)
        return b"E" + f"{int(fmt.signed)},{fmt.round},{fmt.overflow};".encode() + arrays
    return f"{int(fmt.signed)},{fmt.width},{fmt.frac},{fmt.round},{fmt.overflow};".encode()


def _array_bytes(array: np.ndarray | None) -> bytes:
    if array is None:
        return b"-"
    a = np.ascontiguousarray(array, dtype=np.float64)
    return repr(a.shape).encode() + a.tobytes()


def program_digest(program: Program) -> str:
    """A digest of everything the trace reads: the port, and each step's kind, formats and constants (a max
    pool's index groups) in order (node names are left out: the same arithmetic under another name costs the
    same). An unknown step is a TypeError, never mistaken for another."""
    from netcarve.export.program import Dense, MaxPool, Quantize, Relu

    h = hashlib.blake2b(digest_size=32)
    h.update(f"in={program.in_features};".encode())
    h.update(_format_bytes(program.port))
    for step in program.steps:
        if isinstance(step, Quantize):
            h.update(b"Q" + _format_bytes(step.fmt))
        elif isinstance(step, Dense):
            h.update(b"D" + _format_bytes(step.weight_fmt) + _format_bytes(step.bias_fmt))
            h.update(_array_bytes(step.weight) + _array_bytes(step.bias))
        elif isinstance(step, MaxPool):
            h.update(f"M{step.in_features};".encode() + _array_bytes(step.groups))
        elif isinstance(step, Relu):
            h.update(b"R")
        else:
            raise TypeError(f"program_digest: unknown program step {step!r}")
    return h.hexdigest()


#: the package that estimates the firmware metrics
ESTIMATOR_PACKAGE = "alkaid"


def require_estimator() -> None:
    """A one-line error naming the extra when alkaid is missing."""
    if importlib.util.find_spec(ESTIMATOR_PACKAGE) is None:
        raise FpgaUnavailableError(
            "the fpga metrics (fpga_luts, fpga_latency) need the 'alkaid' package: pip install 'netcarve[fpga]'"
        )


def estimator() -> dict[str, str]:
    """Which package and version produce the firmware metrics (recorded with the metric values: they change
    with it)."""
    from netcarve.export.alkaid import package_version

    require_estimator()
    return {"package": ESTIMATOR_PACKAGE, "version": package_version(ESTIMATOR_PACKAGE), "latency_unit": "ns"}


def trace_cost(program: Program) -> FpgaCost:
    """alkaid's estimates of ``program``, traced once per process for the same digest (an LRU)."""
    key = program_digest(program)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    require_estimator()
    from netcarve.export.alkaid import trace_program

    comb = trace_program(program)
    cost = FpgaCost(float(comb.cost), float(max(comb.latency)))
    with _lock:
        _cache[key] = cost
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return cost


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def fpga_costs(graph: Graph, *, per_layer: bool = True) -> FpgaCosts:
    """alkaid's LUT and latency estimates of ``graph``'s firmware, total and (``per_layer``) per Dense layer;
    a search needs only the total, which halves the tracing.

    PassError (from :func:`~netcarve.export.program.build_program`, naming the node) when the graph cannot
    be exported; FpgaUnavailableError when alkaid is missing."""
    from netcarve.export.program import build_program

    program = build_program(graph)
    total = trace_cost(program)
    layers = {}
    for node, layer in program.layer_programs().items() if per_layer else ():
        cost = trace_cost(layer)
        layers[node] = (cost.luts, cost.latency)
    log.debug("fpga: %.0f LUTs, %.2f ns (%d layers)", total.luts, total.latency, len(layers))
    return FpgaCosts(total.luts, total.latency, layers)
