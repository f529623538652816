"""The fast counting path: the README's formulas (Analyze) evaluated on the shapes already in each node's NodeMeta.

No forward pass runs, so counting a built graph costs only a walk over its nodes. It applies only where
the formula is exact: every node must be a module of a class whose computation netcarve knows (torch's
own class, or a quantized subclass of it, recognised by its NodeMeta precision), or an elementwise
function/method (relu, add, mul, softmax) or batch-preserving flatten; every node must carry the batch in
dim 0. Which formula a kind takes is its op spec's ``count`` family (:mod:`netcarve.ir.opspecs`):
``mac``, ``elementwise`` (× ``flops_per_element``), ``pool`` (window sizes shared with the dispatch path
through :func:`~netcarve.analysis.aten_formulas.pool_ops`) or ``free``. Otherwise :func:`count_closed_form`
returns None and the caller counts by dispatch, which is the reference: both paths give identical counts
wherever both apply (tested).

Counts are computed per sample from the NodeMeta shapes (annotated at batch b0) and scaled to batch B.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from netcarve.analysis.aten_formulas import pool_ops
from netcarve.analysis.counter import GraphCounts
from netcarve.analysis.counts import OpCounts
from netcarve.analysis.params import get_attr_value
from netcarve.ir.graph import Graph
from netcarve.ir.meta import NodeMeta, TensorMeta
from netcarve.ir.opspecs import OpSpec, is_exact_class, spec_of_class, spec_of_kind

#: (counts, module or None, per-sample output elements, input needs grad, node metadata) → None
KindFormula = Callable[[OpCounts, nn.Module | None, int, bool, NodeMeta], None]


def _grad(param: torch.Tensor | None) -> bool:
    return param is not None and param.requires_grad


def _mac_module(counts: OpCounts, module: nn.Module | None, n_out: int, in_grad: bool, meta: NodeMeta) -> None:
    assert module is not None
    weight: torch.Tensor = module.weight  # type: ignore[assignment]
    bias: torch.Tensor | None = module.bias  # type: ignore[assignment]
    macs = n_out * math.prod(weight.shape[1:])
    grads = ("dgrad" if in_grad else None, "wgrad" if weight.requires_grad else None)
    counts.add_mac_op(macs, grads, n_out if bias is not None else 0, _grad(bias))


def _elementwise(per_element: int) -> KindFormula:
    def formula(counts: OpCounts, module: nn.Module | None, n_out: int, in_grad: bool, meta: NodeMeta) -> None:
        params = module.parameters(recurse=False) if module is not None else ()
        counts.add_elementwise(per_element * n_out, in_grad or any(p.requires_grad for p in params))

    return formula


def _free(counts: OpCounts, module: nn.Module | None, n_out: int, in_grad: bool, meta: NodeMeta) -> None:
    return None


def _pool(spec: OpSpec) -> KindFormula:
    """One comparison or add per window element (:func:`pool_ops`), from the pooling module's kernel or,
    adaptive, from the input and output sizes in the node's metadata (per sample: the batch dim dropped)."""
    assert spec.pool is not None
    pool = spec.pool

    def formula(counts: OpCounts, module: nn.Module | None, n_out: int, in_grad: bool, meta: NodeMeta) -> None:
        assert module is not None and meta.output is not None
        kernel = None if pool.adaptive else getattr(module, "kernel_size")  # noqa: B009
        ops = pool_ops(meta.inputs[0].shape[1:], meta.output.shape[1:], kernel, pool.dims)
        counts.add_elementwise(ops, in_grad)

    return formula


#: an op spec's ``count`` family → its closed form (pooling: modules only, see :func:`_formula`)
FAMILY_FORMULAS: dict[str, Callable[[OpSpec], KindFormula]] = {
    "mac": lambda spec: _mac_module,
    "elementwise": lambda spec: _elementwise(spec.flops_per_element),
    "pool": _pool,
    "free": lambda spec: _free,
}


def kind_formula(spec: OpSpec) -> KindFormula | None:
    """The closed form of a kind (from its op spec's ``count`` family), None when it has none."""
    family = FAMILY_FORMULAS.get(spec.count) if spec.count is not None else None
    return None if family is None else family(spec)


def _module_is_exact(module: nn.Module, meta: NodeMeta) -> bool:
    """torch's own class, or a quantized subclass (its NodeMeta has a precision) of a known class."""
    if is_exact_class(type(module)):
        if isinstance(module, nn.Unflatten):
            return module.dim >= 1
        return not (isinstance(module, nn.modules.conv._ConvNd) and module.padding_mode != "zeros")
    return bool(meta.precision) and spec_of_class(type(module)) is not None


def _flatten_keeps_batch(node: fx.Node, module: nn.Module | None, meta: NodeMeta) -> bool:
    if module is not None:
        start: Any = getattr(module, "start_dim", None)
    else:
        start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
    if not isinstance(start, int) or not meta.inputs:
        return False
    return (start if start >= 0 else start + len(meta.inputs[0].shape)) >= 1


def _formula(graph: Graph, node: fx.Node, meta: NodeMeta) -> tuple[KindFormula, nn.Module | None] | None:
    spec = spec_of_kind(meta.kind)
    formula = kind_formula(spec) if spec is not None else None
    if spec is None or formula is None:
        return None
    module = graph.submodule(node) if node.op == "call_module" else None
    if module is not None and not _module_is_exact(module, meta):
        return None
    # a call's closed form must not need the module's weights, nor change the batch dimension
    if module is None and (spec.count in ("mac", "pool") or "weight" in spec.operands or spec.reshapes):
        return None
    if spec.start_dim and not _flatten_keeps_batch(node, module, meta):
        return None
    return formula, module


class _Walk:
    """State of one walk over the graph: per-sample counts, batched nodes and which outputs need grad."""

    def __init__(self, graph: Graph, batch_size: int) -> None:
        self.graph, self.batch_size = graph, batch_size
        self.per_sample: dict[str, OpCounts] = {}
        self.shapes: dict[str, tuple[TensorMeta, ...]] = {}
        self.batched: set[str] = set()
        self.needs_grad: dict[str, bool] = {}
        self.b0 = 0

    def get_attr(self, node: fx.Node) -> bool:
        value = get_attr_value(self.graph.module, str(node.target))
        self.needs_grad[node.name] = isinstance(value, torch.Tensor) and value.requires_grad
        self.per_sample[node.name] = OpCounts()
        return True

    def placeholder(self, node: fx.Node, out: TensorMeta) -> bool:
        if self.b0:
            return False  # more than one input
        self.b0 = out.shape[0]
        self._batched(node, out, needs_grad=False)
        return True

    def compute(self, node: fx.Node, meta: NodeMeta, out: TensorMeta) -> bool:
        inputs = node.all_input_nodes
        if out.shape[0] != self.b0 or not any(i.name in self.batched for i in inputs):
            return False
        if any(i.name not in self.batched and i.op != "get_attr" for i in inputs):
            return False
        found = _formula(self.graph, node, meta)
        if found is None:
            return False
        formula, module = found
        in_grad = any(self.needs_grad[i.name] for i in inputs)
        counts = OpCounts()
        formula(counts, module, out.numel // self.b0, in_grad, meta)
        self.per_sample[node.name] = counts
        own = module is not None and any(p.requires_grad for p in module.parameters())
        self._batched(node, out, needs_grad=in_grad or own)
        return True

    def _batched(self, node: fx.Node, out: TensorMeta, needs_grad: bool) -> None:
        self.batched.add(node.name)
        self.needs_grad[node.name] = needs_grad
        self.shapes[node.name] = (TensorMeta((self.batch_size, *out.shape[1:]), out.dtype),)

    def step(self, node: fx.Node) -> bool:
        """Account for one node; False when it has no exact closed form."""
        if node.op == "output":
            return True
        if node.op == "get_attr":
            return self.get_attr(node)
        meta: NodeMeta = self.graph.meta(node)
        out = meta.output
        if out is None or not out.shape:
            return False
        return self.placeholder(node, out) if node.op == "placeholder" else self.compute(node, meta, out)


def count_closed_form(graph: Graph, batch_size: int) -> GraphCounts | None:
    """Per-node counts at ``batch_size`` from NodeMeta shapes, or None where no exact closed form applies."""
    walk = _Walk(graph, batch_size)
    if not all(walk.step(node) for node in graph.module.graph.nodes):
        return None
    counts = {name: c.scaled(batch_size) for name, c in walk.per_sample.items()}
    return GraphCounts(batch_size, counts, walk.shapes, "closed_form")
