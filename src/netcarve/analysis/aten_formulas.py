"""Formulas for ATen ops, as seen by the dispatch counter (README: Analyze).

MAC ops (one multiply-accumulate per weight use)::

    mm (M,K)@(K,N): M·K·N      bmm: b·M·K·N      mv: M·N      dot: N
    addmm / baddbmm / addmv: as above, plus one bias add per output element
    convolution: numel(out)·(C_in/groups)·∏k   (transposed: numel(in)·(C_out/groups)·∏k)

Elementwise and pooling ops come from the op registry (:mod:`netcarve.ir.opspecs`): every kind whose
``count`` is ``elementwise`` charges ``flops_per_element`` per output element to each ATen op in its
``aten`` (relu 1, add/sub 1, mul/div 1, softmax 5, batch norm — every ATen variant, inference
convention — 4); ``sub`` and ``div`` are the README's add and mul with the other sign/inverse. A ``pool`` kind
charges one comparison (max) or add (avg) per window element: numel(out)·∏kernel, and for adaptive
pooling Σ over outputs of its window (start ⌊i·In/Out⌋, end ⌈(i+1)·In/Out⌉ per dim).
``mean`` charges one add per input element, numel(in), as an average pool does per window element:
adaptive average pooling to size 1 (``AdaptiveAvgPool2d(1)``, global average pooling) dispatches as
``mean`` over the pooled dims, and ``x.mean((2, 3))`` is the same pooling written out, so both count what
the closed form counts for the pool. Other elementwise ops and reductions (exp, tanh, cumsum, sum,
rounding, …) have no formula and are reported as uncounted.

Free ops (no arithmetic, never counted nor listed): views and metadata (view, reshape, t, transpose,
permute, expand, squeeze/unsqueeze, slice/select/split, alias, detach, as_strided), data movement
without arithmetic (clone, contiguous, copy_, _to_copy, cat, stack), tensor creation (empty, zeros,
ones, full, *_like, fill_, zero_) and every ``prim`` op. Dropout in eval mode emits no op at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from netcarve.analysis.counts import OpCounts
from netcarve.ir.opspecs import OPS, Pool

aten = torch.ops.aten

#: which gradient an operand would receive: "dgrad" (depends on the data), "wgrad", or None (no grad)
GradOf = Callable[[Any], str | None]
Formula = Callable[[OpCounts, Sequence[Any], Any, GradOf], None]

_FREE_NAMES = (
    "view _unsafe_view _reshape_alias reshape t transpose permute expand expand_as squeeze unsqueeze "
    "flatten unflatten alias as_strided slice select split split_with_sizes chunk unbind narrow detach "
    "lift_fresh lift_fresh_copy clone contiguous copy copy_ _to_copy to cat stack empty empty_like "
    "empty_strided new_empty new_zeros new_ones zeros zeros_like ones ones_like full full_like fill fill_ "
    "zero_ scalar_tensor _local_scalar_dense sym_size sym_stride sym_numel sym_storage_offset "
    "is_same_size dropout"
)

FREE_OPS: frozenset[Any] = frozenset(getattr(aten, name) for name in _FREE_NAMES.split() if hasattr(aten, name))


def is_free(packet: Any) -> bool:
    return packet in FREE_OPS or str(packet).startswith("prim.")


def _numel(t: Any) -> int:
    return int(t.numel()) if isinstance(t, torch.Tensor) else 0


def _mac_op(counts: OpCounts, macs: int, operands: Sequence[Any], bias: Any, out: Any, grad_of: GradOf) -> None:
    biased = isinstance(bias, torch.Tensor)
    counts.add_mac_op(
        macs,
        tuple(grad_of(t) for t in operands),
        _numel(out) if biased else 0,
        biased and grad_of(bias) is not None,
    )


def _mm(counts: OpCounts, args: Sequence[Any], out: Any, grad_of: GradOf) -> None:
    a, b = args[0], args[1]
    _mac_op(counts, a.shape[0] * a.shape[1] * b.shape[1], (a, b), None, out, grad_of)


def _addmm(counts: OpCounts, args: Sequence[Any], out: Any, grad_of: GradOf) -> None:
    bias, a, b = args[0], args[1], args[2]
    _mac_op(counts, a.shape[0] * a.shape[1] * b.shape[1], (a, b), bias, out, grad_of)


def _bmm(counts: OpCounts, args: Sequence[Any], out: Any, grad_of: GradOf) -> None:
    a, b = args[0], args[1]
    _mac_op(counts, a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], (a, b), None, out, grad_of)


def _baddbmm(counts: OpCounts, args: Sequence[Any], out: Any, grad_of: GradOf) -> None:
    bias, a, b = args[0], args[1], args[2]
    _mac_op(counts, a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], (a, b), bias, out, grad_of)


def _mv(counts: OpCounts, args: Sequence[Any], out: Any, grad_of: GradOf) -> None:
    a, v = args[0], args[1]
    _mac_op(counts, a.shape[0] * a.shape[1], (a, v), None, out, grad_of)


def _addmv(counts: OpCounts, args: Sequence[Any], out: Any, grad_of: GradOf) -> None:
    bias, a, v = args[0], args[1], args[2]
    _mac_op(counts, a.shape[0] * a.shape[1], (a, v), bias, out, grad_of)


def _dot(counts: OpCounts, args: Sequence[Any], out: Any, grad_of: GradOf) -> None:
    a, b = args[0], args[1]
    _mac_op(counts, a.shape[0], (a, b), None, out, grad_of)


def _convolution(counts: OpCounts, args: Sequence[Any], out: Any, grad_of: GradOf) -> None:
    x, weight, bias = args[0], args[1], args[2]
    transposed = bool(args[6]) if len(args) > 6 else False
    per_element = math.prod(weight.shape[1:])
    macs = (_numel(x) if transposed else _numel(out)) * per_element
    _mac_op(counts, macs, (x, weight), bias, out, grad_of)


def _elementwise(per_element: int) -> Formula:
    def formula(counts: OpCounts, args: Sequence[Any], out: Any, grad_of: GradOf) -> None:
        numel = _numel(out if isinstance(out, torch.Tensor) else out[0])
        needs_grad = any(grad_of(t) is not None for t in args if isinstance(t, torch.Tensor))
        counts.add_elementwise(per_element * numel, needs_grad)

    return formula


def _adaptive_window(n_in: int, n_out: int) -> int:
    """Σ over the n_out adaptive windows of their length (start ⌊i·n_in/n_out⌋, end ⌈(i+1)·n_in/n_out⌉)."""
    return sum(-(-(i + 1) * n_in // n_out) - (i * n_in // n_out) for i in range(n_out))


def pool_ops(in_shape: Sequence[int], out_shape: Sequence[int], kernel: int | Sequence[int] | None, dims: int) -> int:
    """Comparisons (max) or adds (avg) of a pooling over the last ``dims`` dims: one per window element.

    ``kernel`` None: adaptive pooling (windows from the input and output sizes); else numel(out)·∏kernel
    (one kernel size, an int or a 1-sequence, stands for every dim)."""
    leading = math.prod(out_shape[: len(out_shape) - dims])
    if kernel is None:
        pairs = zip(in_shape[len(in_shape) - dims :], out_shape[len(out_shape) - dims :], strict=True)
        return leading * math.prod(_adaptive_window(int(i), int(o)) for i, o in pairs)
    sizes = [int(kernel)] if isinstance(kernel, int) else [int(k) for k in kernel]
    return math.prod(out_shape) * math.prod(sizes * dims if len(sizes) == 1 else sizes)


def _pool(pool: Pool) -> Formula:
    def formula(counts: OpCounts, args: Sequence[Any], out: Any, grad_of: GradOf) -> None:
        x = args[0]
        y = out if isinstance(out, torch.Tensor) else out[0]
        kernel = None if pool.adaptive else args[1]
        counts.add_elementwise(pool_ops(tuple(x.shape), tuple(y.shape), kernel, pool.dims), grad_of(x) is not None)

    return formula


def _mean(counts: OpCounts, args: Sequence[Any], out: Any, grad_of: GradOf) -> None:
    x = args[0]
    counts.add_elementwise(_numel(x), grad_of(x) is not None)


_MAC_TABLE: dict[Any, Formula] = {
    aten.mm: _mm,
    aten.addmm: _addmm,
    aten.bmm: _bmm,
    aten.baddbmm: _baddbmm,
    aten.mv: _mv,
    aten.addmv: _addmv,
    aten.dot: _dot,
    aten.vdot: _dot,
    aten.convolution: _convolution,
    aten._convolution: _convolution,
}

_REDUCTIONS: dict[Any, Formula] = {aten.mean: _mean}


def _build_table() -> dict[Any, Formula]:
    table = {**_MAC_TABLE, **_REDUCTIONS}
    for kind in OPS:
        spec = OPS.get(kind)
        names = spec.aten
        if spec.count == "elementwise":
            formula = _elementwise(spec.flops_per_element)
        elif spec.count == "pool" and spec.pool is not None:
            formula = _pool(spec.pool)
        else:
            continue
        for name in names:
            if hasattr(aten, name):
                table[getattr(aten, name)] = formula
    return table


_TABLE: tuple[tuple[str, ...], dict[Any, Formula]] = ((), {})


def formulas() -> dict[Any, Formula]:
    """ATen op → formula; rebuilt when the op registry changes (a kind registered at run time is counted)."""
    global _TABLE
    key = tuple(f"{k}:{id(OPS.get(k))}" for k in OPS)
    if _TABLE[0] != key:
        _TABLE = (key, _build_table())
    return _TABLE[1]


def formula_of(packet: Any) -> Formula | None:
    return formulas().get(packet)
