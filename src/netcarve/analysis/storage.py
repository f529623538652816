"""Parameters, buffers and their stored bits, per node (DESIGN §5: params, size_bits, buffer_bits).

A parameter is stored at its operand's precision from the owning node's NodeMeta (``bias`` for a tensor
named ``bias``, ``weight`` for every other parameter, BatchNorm's affine ones included), otherwise at its
dtype's width (32 for float32). Buffers (BatchNorm running statistics, ``num_batches_tracked``) are kept
apart at their dtype's width. A tensor shared by several nodes is counted once, at its first node.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from netcarve.ir.graph import Graph
from netcarve.ir.meta import NodeMeta


@dataclass(frozen=True)
class NodeStorage:
    params: int = 0
    buffers: int = 0
    size_bits: int = 0
    buffer_bits: int = 0


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


def _param_bits(meta: NodeMeta, name: str, tensor: torch.Tensor) -> int:
    operand = "bias" if name.rsplit(".", 1)[-1] == "bias" else "weight"
    if operand in meta.precision:
        return meta.precision[operand].width
    return tensor.element_size() * 8


def node_storage(graph: Graph) -> dict[str, NodeStorage]:
    """Storage of every node that holds tensors (others are absent: they hold nothing)."""
    seen: set[int] = set()
    out: dict[str, NodeStorage] = {}
    for node in graph.module.graph.nodes:
        if node.op not in ("call_module", "get_attr"):
            continue
        meta = graph.meta(node)
        params = buffers = size_bits = buffer_bits = 0
        for name, tensor, is_param in _tensors(graph, node):
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            numel = tensor.numel()
            if is_param:
                params += numel
                size_bits += numel * _param_bits(meta, name, tensor)
            else:
                buffers += numel
                buffer_bits += numel * tensor.element_size() * 8
        if params or buffers:
            out[node.name] = NodeStorage(params, buffers, size_bits, buffer_bits)
    return out
