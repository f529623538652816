"""Bits per element: the analysis of operands with per-element formats
(:mod:`netcarve.transforms.quantize.formats`).

An operand with per-element formats is stored and computed at each element's own width; a pruned element
(width 0) holds no bits and takes part in no BitOP. Its widths come from the module's quantizer spec (the one
home of the formats), broadcast to the parameter's shape or to one sample of the activation:

- ``size_bits`` of a parameter: the sum of its elements' widths (:func:`stored_bits`);
- ``bitops`` (netcarve convention, :func:`netcarve.analysis.counts.derive`): each term at the mean width per
  use, ``macs · (w·a per MAC) + bias_adds · b̄ + elementwise · ā``. A Linear over one-dimensional samples
  gets the exact ``Σ_o Σ_i w[o, i] · a[i]`` per sample (each MAC pairs weight ``[o, i]`` with input ``i``);
  elsewhere the MAC term is ``w̄ · ā`` (exact when one of the two is one width for all, as each weight is
  used equally often; with both per element in a convolution, an approximation). Rounded to an integer.
- the per-layer summary (:class:`ElementSummary`): mean and largest width and the pruned share of the
  layer's parameters (weight and bias elements).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.fx as fx

from netcarve.ir.graph import Graph

#: operand → widths (int64) broadcast to the parameter's shape, or to one sample of the activation
Widths = dict[str, torch.Tensor]


def element_widths(graph: Graph, node: fx.Node) -> Widths:
    """The widths of ``node``'s operands that have per-element formats (empty: none has)."""
    if node.op != "call_module":
        return {}
    module = graph.submodule(node)
    out: Widths = {}
    meta = graph.meta(node)
    for operand, spec in getattr(module, "quant", {}).items():
        formats = getattr(spec, "formats", None)
        if formats is None:
            continue
        if operand in ("weight", "bias"):
            shape = tuple(getattr(module, operand).shape)
        else:
            tensor = meta.inputs[0] if operand == "data_in" and meta.inputs else meta.output
            if tensor is None:
                continue
            shape = tuple(tensor.shape[1:])
        out[operand] = formats.broadcast(shape)[0].to(torch.int64)
    return out


def stored_bits(widths: Widths, name: str) -> int | None:
    """The bits of parameter ``name`` (``bias``, else ``weight``) when it has per-element formats, else None."""
    operand = "bias" if name.rsplit(".", 1)[-1] == "bias" else "weight"
    found = widths.get(operand)
    return None if found is None else int(found.sum())


def mean(widths: torch.Tensor) -> Fraction:
    return Fraction(int(widths.sum()), max(widths.numel(), 1))


def mac_bits(widths: Widths, w: int, a: int) -> Fraction | None:
    """The mean ``w · a`` per MAC (``w``, ``a``: the scalar weight and input bits, used where that operand
    has no per-element formats); None when neither has per-element formats."""
    weight, data_in = widths.get("weight"), widths.get("data_in")
    if weight is None and data_in is None:
        return None
    if (  # a Linear over one-dimensional samples: weight [o, i] meets input i
        weight is not None
        and data_in is not None
        and weight.dim() == 2
        and data_in.dim() == 1
        and weight.shape[1] == data_in.shape[0]
    ):
        return Fraction(int((weight * data_in).sum()), weight.numel())
    return (mean(weight) if weight is not None else Fraction(w)) * (mean(data_in) if data_in is not None else a)


@dataclass(frozen=True)
class ElementSummary:
    """A layer's parameters with per-element formats: mean and largest element width, share pruned."""

    mean_bits: float
    max_bits: int
    pruned_share: float


def summary(widths: Widths, scalar_bits: dict[str, tuple[int, int]]) -> ElementSummary | None:
    """The summary over the layer's weight and bias elements (``scalar_bits``: operand → (bits, elements) of
    a parameter without per-element formats); None when the layer has no per-element formats."""
    if not widths:
        return None
    total = elements = pruned = 0
    largest = 0
    for operand in ("weight", "bias"):
        if operand in widths:
            t = widths[operand]
            total, elements = total + int(t.sum()), elements + t.numel()
            pruned += int((t == 0).sum())
            largest = max(largest, int(t.max()) if t.numel() else 0)
        elif operand in scalar_bits:
            bits, n = scalar_bits[operand]
            total, elements, largest = total + bits * n, elements + n, max(largest, bits if n else 0)
    if not elements:
        return None
    return ElementSummary(total / elements, largest, pruned / elements)
