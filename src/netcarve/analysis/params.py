"""Parameters, buffers and their stored bits, per node (README: Analyze — params, size_bits, buffer_bits).

``params`` counts trainable parameter elements (``requires_grad``), ``frozen_params`` the others; both are
stored, so ``size_bits`` covers both. A parameter with per-element formats is stored at the sum of its
elements' widths (a pruned element: 0 bits; :mod:`netcarve.analysis.elements`); any other at its operand's
precision from the owning node's NodeMeta (``bias`` for a tensor named ``bias``, ``weight`` for every other
parameter, BatchNorm's affine ones included), otherwise at its dtype's width (32 for float32, 64 for
float64). Buffers (BatchNorm running statistics, ``num_batches_tracked``) are kept apart at their dtype's
width. A tensor shared by several nodes is counted once, at its first node.

Tensors of the graph's module that no node uses (a submodule ``forward`` never calls, kept by
:func:`netcarve.ir.graph.keep_unused`) are counted as well, per owning module: :func:`graph_storage`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from netcarve.analysis.elements import Widths, element_widths, stored_bits
from netcarve.ir.graph import Graph
from netcarve.ir.meta import NodeMeta


@dataclass(frozen=True)
class NodeStorage:
    params: int = 0
    buffers: int = 0
    size_bits: int = 0
    buffer_bits: int = 0
    frozen_params: int = 0


EMPTY = NodeStorage()


def get_attr_value(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _tensors(graph: Graph, node: fx.Node) -> Iterator[tuple[str, torch.Tensor, bool]]:
    """(name, tensor, is_parameter) of everything a node holds."""
    if node.op == "call_module":
        module = graph.submodule(node)
        for name, p in module.named_parameters():
            yield name, p, True
        for name, b in module.named_buffers():
            yield name, b, False
    elif node.op == "get_attr":
        value = get_attr_value(graph.module, str(node.target))
        if isinstance(value, torch.Tensor):
            yield str(node.target), value, isinstance(value, nn.Parameter)


def _param_bits(meta: NodeMeta | None, name: str, tensor: torch.Tensor) -> int:
    operand = "bias" if name.rsplit(".", 1)[-1] == "bias" else "weight"
    if meta is not None and operand in meta.precision:
        return meta.precision[operand].width
    return tensor.element_size() * 8


def _storage(
    tensors: Iterable[tuple[str, torch.Tensor, bool]],
    meta: NodeMeta | None,
    seen: set[int],
    widths: Widths | None = None,
) -> NodeStorage | None:
    """What ``tensors`` hold (those not ``seen`` yet, which become seen); None when that is nothing.
    ``widths``: the node's per-element widths."""
    params = frozen = buffers = size_bits = buffer_bits = 0
    for name, tensor, is_param in tensors:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        numel = tensor.numel()
        if is_param:
            if tensor.requires_grad:
                params += numel
            else:
                frozen += numel
            own = stored_bits(widths, name) if widths else None
            size_bits += own if own is not None else numel * _param_bits(meta, name, tensor)
        else:
            buffers += numel
            buffer_bits += numel * tensor.element_size() * 8
    if not (params or frozen or buffers):
        return None
    return NodeStorage(params, buffers, size_bits, buffer_bits, frozen)


def _node_storage(graph: Graph, seen: set[int]) -> dict[str, NodeStorage]:
    out: dict[str, NodeStorage] = {}
    for node in graph.module.graph.nodes:
        if node.op not in ("call_module", "get_attr"):
            continue
        held = _storage(_tensors(graph, node), graph.meta(node), seen, element_widths(graph, node))
        if held is not None:
            out[node.name] = held
    return out


def _dtype_text(tensors: Iterable[tuple[str, torch.Tensor, bool]]) -> str:
    dtypes = [t.dtype for _, t, _ in tensors if t.is_floating_point()]
    return str(dtypes[0]).removeprefix("torch.") if dtypes else "float32"


def graph_storage(
    graph: Graph,
) -> tuple[dict[str, NodeStorage], dict[str, tuple[str, NodeStorage, str]]]:
    """The storage of every node that holds tensors (others are absent: they hold nothing), and the tensors
    no node uses by owning module: dotted module name → (its class name, storage, float dtype); a tensor held
    directly by the top-level module gets its own entry under its own name (class name ``Parameter`` or
    ``buffer``), stored at its dtype's width (no node, so no quantized precision)."""
    seen: set[int] = set()
    return _node_storage(graph, seen), _unused(graph, seen)


def _unused(graph: Graph, seen: set[int]) -> dict[str, tuple[str, NodeStorage, str]]:
    """The unused part of :func:`graph_storage`, the tensors the nodes hold already ``seen``."""
    if all(id(t) in seen for t in (*graph.module.parameters(), *graph.module.buffers())):
        return {}  # every tensor is a node's (the usual case)
    out: dict[str, tuple[str, NodeStorage, str]] = {}
    for path, module in graph.module.named_modules():
        direct = [
            *((n, t, True) for n, t in module.named_parameters(recurse=False)),
            *((n, t, False) for n, t in module.named_buffers(recurse=False)),
        ]
        if path:
            held = _storage(direct, None, seen)
            if held is not None:
                out[path] = (type(module).__name__, held, _dtype_text(direct))
            continue
        for item in direct:
            held = _storage([item], None, seen)
            if held is not None:
                out[item[0]] = ("Parameter" if item[2] else "buffer", held, _dtype_text([item]))
    return out
