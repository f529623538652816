"""Formulas for ATen ops, as seen by the dispatch counter (DESIGN §5).

MAC ops (one multiply-accumulate per weight use)::

    mm (M,K)@(K,N): M·K·N      bmm: b·M·K·N      mv: M·N      dot: N
    addmm / baddbmm / addmv: as above, plus one bias add per output element
    convolution: numel(out)·(C_in/groups)·∏k   (transposed: numel(in)·(C_out/groups)·∏k)

Elementwise ops (flops per output element): relu 1, add/sub 1, mul/div 1, softmax 5;
batch norm (every ATen variant, counted with the inference convention) 4 per input element.
``sub`` and ``div`` are DESIGN's add and mul with the other sign/inverse; other elementwise ops
(exp, tanh, cumsum, rounding, …) have no formula and are reported as uncounted.

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


def _elementwise(per_element: int, use_input: bool = False) -> Formula:
    def formula(counts: OpCounts, args: Sequence[Any], out: Any, grad_of: GradOf) -> None:
        numel = _numel(args[0]) if use_input else _numel(out if isinstance(out, torch.Tensor) else out[0])
        needs_grad = any(grad_of(t) is not None for t in args if isinstance(t, torch.Tensor))
        counts.add_elementwise(per_element * numel, needs_grad)

    return formula


def _build_table() -> dict[Any, Formula]:
    table: dict[Any, Formula] = {
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
    one = _elementwise(1)
    for name in ("relu", "relu_", "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"):
        table[getattr(aten, name)] = one
    for name in ("_softmax", "_safe_softmax"):
        if hasattr(aten, name):
            table[getattr(aten, name)] = _elementwise(5)
    bn = _elementwise(4, use_input=True)
    for name in (
        "native_batch_norm",
        "_native_batch_norm_legit",
        "_native_batch_norm_legit_no_training",
        "_native_batch_norm_legit_functional",
        "_batch_norm_with_update",
        "_batch_norm_no_update",
    ):
        if hasattr(aten, name):
            table[getattr(aten, name)] = bn
    return table


FORMULAS: dict[Any, Formula] = _build_table()
