"""Raw per-node operation counts and the metrics (README: Analyze) derived from them.

Both counting paths (the dispatch counter and the closed form over NodeMeta shapes) produce
:class:`OpCounts`; :func:`derive` turns them into flops, bitops and backward flops for a convention.

Conventions
-----------
``netcarve`` (README: Analyze)::

    flops          = 2·macs + bias_adds + elementwise
    bitops         = macs·w·a + bias_adds·b + elementwise·a      (w, a, b: weight, data_in, bias bits;
                                                                  per-element formats: netcarve.analysis.elements)
    backward_flops = 2·(dgrad_macs + wgrad_macs) + bias_grad_adds + elementwise_backward

``mase`` (the seed lab report's arithmetic: one "computation" per weight use and per elementwise op)::

    flops          = macs + elementwise                          (Linear = weight.numel()·B, no bias)
    bitops         = 32 · flops                                  (as the report: every computation 32 bits)
    backward_flops = 2·macs + elementwise                        (MASE: Linear 2×, ReLU/BN 1×)

The MAC counts and ``backward_dgrad_macs``/``backward_wgrad_macs`` are the same in both conventions.

Backward follows autograd: a gradient is counted only for an operand that needs one. So the first
layer has no dgrad (its input is the model input), a frozen weight has no wgrad, and an elementwise op
whose inputs need no gradient (e.g. a ReLU straight after a frozen first layer) has no backward cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import torch

from netcarve.analysis.elements import Widths, mac_bits, mean
from netcarve.ir.meta import NodeMeta

Convention = Literal["netcarve", "mase"]
CONVENTIONS: tuple[Convention, ...] = ("netcarve", "mase")
MASE_BITS = 32


@dataclass
class OpCounts:
    """What one node computes, before precision and convention are applied (all integer counts)."""

    macs: int = 0
    bias_adds: int = 0
    elementwise: int = 0
    dgrad_macs: int = 0
    wgrad_macs: int = 0
    bias_grad_adds: int = 0
    elementwise_backward: int = 0
    uncounted: dict[str, int] = field(default_factory=dict)

    def add_mac_op(self, macs: int, grads: tuple[str | None, ...], bias_adds: int, bias_grad: bool) -> None:
        """A matmul/conv: ``grads`` names, per operand, "dgrad", "wgrad" or None (needs no gradient)."""
        self.macs += macs
        self.bias_adds += bias_adds
        self.dgrad_macs += macs * grads.count("dgrad")
        self.wgrad_macs += macs * grads.count("wgrad")
        if bias_grad:
            self.bias_grad_adds += bias_adds

    def add_elementwise(self, flops: int, needs_grad: bool) -> None:
        self.elementwise += flops
        if needs_grad:
            self.elementwise_backward += flops

    def add_uncounted(self, op: str, times: int = 1) -> None:
        self.uncounted[op] = self.uncounted.get(op, 0) + times

    def scaled(self, factor: int) -> OpCounts:
        """Counts multiplied by ``factor`` (per-sample counts → batch counts); ``uncounted`` is per call."""
        return OpCounts(
            self.macs * factor,
            self.bias_adds * factor,
            self.elementwise * factor,
            self.dgrad_macs * factor,
            self.wgrad_macs * factor,
            self.bias_grad_adds * factor,
            self.elementwise_backward * factor,
            dict(self.uncounted),
        )


@dataclass(frozen=True)
class Derived:
    flops: int
    bitops: int
    backward_flops: int


def _float_width(dtype: str) -> int:
    """Bits of a floating-point dtype name (``float64`` → 64); 32 for anything else."""
    value = getattr(torch, dtype, None)
    return value.itemsize * 8 if isinstance(value, torch.dtype) and value.is_floating_point else 32


def operand_bits(meta: NodeMeta, operand: str) -> int:
    """Stored bit width of ``operand`` from the node's precision; when not quantized, the width of the
    node's floating-point dtype (its input's for ``data_in``, its output's otherwise): 32 for float32."""
    if operand in meta.precision:
        return meta.precision[operand].width
    tensor = meta.inputs[0] if operand == "data_in" and meta.inputs else meta.output
    return _float_width(tensor.dtype) if tensor is not None else 32


def derive(counts: OpCounts, meta: NodeMeta, convention: Convention, widths: Widths | None = None) -> Derived:
    """flops, bitops and backward flops of one node (see the module docstring); ``widths``: the node's
    per-element widths (:func:`netcarve.analysis.elements.element_widths`), counted at each element's bits."""
    if convention == "mase":
        flops = counts.macs + counts.elementwise
        return Derived(flops, MASE_BITS * flops, 2 * counts.macs + counts.elementwise)
    w, a, b = (operand_bits(meta, op) for op in ("weight", "data_in", "bias"))
    flops = 2 * counts.macs + counts.bias_adds + counts.elementwise
    if widths:
        per_mac = mac_bits(widths, w, a)
        a_mean = mean(widths["data_in"]) if "data_in" in widths else Fraction(a)
        b_mean = mean(widths["bias"]) if "bias" in widths else Fraction(b)
        macs = counts.macs * (per_mac if per_mac is not None else Fraction(w * a))
        bitops = round(macs + counts.bias_adds * b_mean + counts.elementwise * a_mean)
    else:
        bitops = counts.macs * w * a + counts.bias_adds * b + counts.elementwise * a
    backward = 2 * (counts.dgrad_macs + counts.wgrad_macs) + counts.bias_grad_adds + counts.elementwise_backward
    return Derived(flops, bitops, backward)


def merge_uncounted(per_node: Mapping[str, OpCounts]) -> dict[str, int]:
    """Uncounted ops of the whole graph: op name → number of calls."""
    total: dict[str, int] = {}
    for counts in per_node.values():
        for op, n in counts.uncounted.items():
            total[op] = total.get(op, 0) + n
    return dict(sorted(total.items()))
