"""Activation memory: each node's output bytes and the peak of live activations over the fx node order.

A node's output is stored at its ``data_out`` precision when the node has one, otherwise at its dtype's
width; bytes are ``ceil(numel · bits / 8)``. The model input counts as an activation (the placeholder).

Liveness: the forward pass runs the nodes in graph order; a node's output is live from the step that
produces it to the last step that uses it (the graph's outputs stay live to the end). The peak is the
largest sum of live outputs at any step — inputs still needed, plus the output being produced. Views
and in-place results are counted as their own buffers (no alias analysis): an upper bound for them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.fx as fx

from netcarve.ir.meta import NodeMeta, TensorMeta

_DTYPE_BITS: dict[str, int] = {}


def dtype_bits(dtype: str) -> int:
    bits = _DTYPE_BITS.get(dtype)
    if bits is None:
        value = getattr(torch, dtype, None)
        bits = value.itemsize * 8 if isinstance(value, torch.dtype) else 32
        _DTYPE_BITS[dtype] = bits
    return bits


def output_bytes(meta: NodeMeta, tensors: tuple[TensorMeta, ...]) -> int:
    """Bytes of the tensors a node produced, at the node's ``data_out`` precision when it has one (with
    per-element formats, its largest width: a buffer of the tensor holds its widest element)."""
    total = 0
    for t in tensors:
        bits = meta.precision["data_out"].width if "data_out" in meta.precision else dtype_bits(t.dtype)
        total += math.ceil(t.numel * bits / 8)
    return total


def peak_live_bytes(graph: fx.Graph, nbytes: Mapping[str, int]) -> int:
    """Peak of live activation bytes when the nodes run in order (see the module docstring)."""
    nodes = [n for n in graph.nodes if n.op != "output"]
    index = {n.name: i for i, n in enumerate(nodes)}
    end = len(nodes)
    free_after: list[int] = [0] * (end + 1)
    for i, n in enumerate(nodes):
        last = max((index.get(u.name, end) for u in n.users), default=i)
        free_after[last] += nbytes.get(n.name, 0)
    live = peak = 0
    for i, n in enumerate(nodes):
        live += nbytes.get(n.name, 0)
        peak = max(peak, live)
        live -= free_after[i]
    return peak
