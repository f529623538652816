"""A member's template: the chain of modules population training can stack, or why it cannot.

The module's fx graph must be a chain ``x → m1 → … → mn → out`` of call_module nodes, each module a
registered class itself or its kind's quantized class (a user subclass may have its own forward) of a kind
whose registry entry has a ``batched`` capability (:mod:`netcarve.train.population.layers`). The template
is the sequence of kinds, per node its :class:`~netcarve.train.population.layers.BatchedKind` key (a
Linear's bias presence, a BatchNorm's momentum and eps) and its quantized operands with their round and
overflow modes and whether the frac is automatic (``integer``), or the granularity and sign (``learned``), plus
the input and output widths and whether there is a BatchNorm (fit's one-row-batch rule). Members of one
template are stacked; hidden widths may differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from netcarve.ir.opspecs import OpSpec, exact_spec, spec_of_module
from netcarve.train.driver import has_batch_norm
from netcarve.train.population.layers import BatchedKind, Unsupported, batched_kind
from netcarve.train.resources import learned_state

#: the quantizers a stacked member may use: ``integer`` (one format per operand and member) and ``learned``
#: (its fracs and activation ranges stacked; the learned quantizer's granularity and sign shared by the batch)
BATCHED_QUANTIZERS = ("integer", "learned")


@dataclass(frozen=True)
class Chain:
    """A member's module, its chain of submodules with their kinds, its template key and its widths (input,
    each node's output)."""

    root: nn.Module
    modules: tuple[nn.Module, ...]
    kinds: tuple[BatchedKind, ...]
    key: tuple[Any, ...]
    widths: tuple[int, ...]

    @property
    def has_batch_norm(self) -> bool:
        return bool(self.key[0])

    @property
    def nodes(self) -> tuple[tuple[Any, ...], ...]:
        """Per node: (kind name, quantized operands with their modes, the kind's own key...)."""
        return tuple(self.key[3])


def _graph_of(module: nn.Module) -> fx.GraphModule:
    if isinstance(module, fx.GraphModule):
        return module
    try:
        return fx.symbolic_trace(module)
    except Exception as exc:  # any tracing failure means "not batchable"
        raise Unsupported(f"cannot trace {type(module).__name__}: {exc}") from exc


def _quant_key(module: nn.Module, spec: OpSpec) -> tuple[tuple[Any, ...], ...]:
    keys = []
    for operand, q in sorted(getattr(module, "quant", {}).items()):
        if operand not in spec.operands:
            raise Unsupported(f"{type(module).__name__} quantizes an unknown operand {operand!r}")
        name = q.quantizer.name
        if name not in BATCHED_QUANTIZERS:
            raise Unsupported(f"quantizer {name!r} (only {' and '.join(map(repr, BATCHED_QUANTIZERS))} are batched)")
        if getattr(q, "formats", None) is not None:
            raise Unsupported(f"{operand} has per-element formats (only one format per operand is batched)")
        if operand == "bias" and getattr(module, "bias", None) is None:
            continue
        learned = learned_state(module, operand)
        if (name == "learned") != (learned is not None):
            raise Unsupported(f"{operand}'s learned quantizer has no learned state")
        own = (q.granularity, bool(q.signed)) if learned is not None else ()
        keys.append((operand, name, q.round, q.overflow, bool(getattr(q, "auto_frac", False)), *own))
    return tuple(keys)


def chain(module: nn.Module) -> Chain:
    """The member's chain, or :class:`Unsupported` with the reason."""
    gm = _graph_of(module)
    nodes = list(gm.graph.nodes)
    if len(nodes) < 3 or nodes[0].op != "placeholder" or nodes[-1].op != "output":
        raise Unsupported("the graph is not a chain x → modules → output")
    if sum(n.op == "placeholder" for n in nodes) != 1:
        raise Unsupported("the graph has more than one input")
    modules: list[nn.Module] = []
    specs: list[OpSpec] = []
    kinds: list[BatchedKind] = []
    key: list[Any] = []
    prev = nodes[0]
    for node in nodes[1:-1]:
        if node.op != "call_module":
            raise Unsupported(f"node {node.name} is a {node.op} ({node.target}), not a module call")
        if node.args != (prev,) or node.kwargs or len(prev.users) != 1:
            raise Unsupported(f"node {node.name} is not part of a chain")
        sub = gm.get_submodule(str(node.target))
        spec = exact_spec(type(sub))
        kind = batched_kind(spec) if spec is not None else None
        if spec is None or kind is None:
            raise Unsupported(f"node {node.name} is a {type(sub).__name__}")
        key.append((spec.kind, _quant_key(sub, spec), *kind.key(sub, node.name)))
        modules.append(sub)
        specs.append(spec)
        kinds.append(kind)
        prev = node
    out = nodes[-1]
    if out.args != (prev,) or len(prev.users) != 1:
        raise Unsupported("the output is not the last module's")
    params = [p for m in modules for p in m.parameters()]
    if any(not p.requires_grad for p in params):
        raise Unsupported("a parameter is frozen")
    if any(p.dtype != torch.float32 for p in params):
        raise Unsupported("a parameter is not float32")
    if len({id(p) for p in params}) != len(params):
        raise Unsupported("parameters are shared between layers")
    widths = _widths(modules, specs)
    return Chain(module, tuple(modules), tuple(kinds), (has_batch_norm(module), widths[0], widths[-1], tuple(key)),
                 widths)  # fmt: skip


def _widths(modules: Sequence[nn.Module], specs: Sequence[OpSpec]) -> tuple[int, ...]:
    """The input width and each node's output width, read with the kinds' ``width_attrs`` (a kind without
    them keeps its input's width)."""
    first = next(((m, s.width_attrs) for m, s in zip(modules, specs, strict=True) if s.width_attrs), None)
    if first is None:
        raise Unsupported("no layer fixes the input width")
    width = int(getattr(first[0], first[1][0]))
    widths = [width]
    for m, spec in zip(modules, specs, strict=True):
        if spec.width_attrs is not None:
            w_in, w_out = (int(getattr(m, attr)) for attr in spec.width_attrs)
            if w_in != width:
                raise Unsupported(f"a {type(m).__name__}'s input width does not match its producer")
            width = w_out
        widths.append(width)
    return tuple(widths)


def module_widths(module: nn.Module) -> Sequence[int]:
    """The widths :func:`~netcarve.train.population.member_bytes` counts: the chain's, or for a module that
    is not one, every registered layer's distinct width attributes."""
    try:
        return chain(module).widths
    except Unsupported:
        return [
            int(getattr(m, attr))
            for m in module.modules()
            if (spec := spec_of_module(m)) is not None and spec.width_attrs is not None
            for attr in dict.fromkeys(spec.width_attrs)
        ]
