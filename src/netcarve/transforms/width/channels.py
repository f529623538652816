"""Channel groups: which tensors of a graph must share one channel layout.

Every tensor-valued node's output lives in a *channel group*. A Linear/Conv starts a new group (its
outputs); BatchNorm and elementwise unary ops (ReLU, dropout, …) stay in their input's group; a binary
elementwise op (add, mul, residual connections) merges the groups of its operands. So one group is "a set of
channels", with the layers that produce it and every BatchNorm and consumer that has to follow it.

A group is *fixed* (its width cannot change) when it contains the model input, reaches the model output,
or passes through an op netcarve cannot carry a width change through (reshape, cat, functional layers with
their own weights, unknown modules, …); the reasons are kept for the error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.fx as fx

from netcarve.ir.graph import Graph
from netcarve.ir.ops import WIDTH_KINDS

#: BatchNorm modules: their parameters and running stats follow their input's channels
NORM_KINDS = frozenset({"batch_norm1d", "batch_norm2d"})
#: parameter-free ops applied per element: a width change passes through them unchanged
UNARY_KINDS = frozenset(
    {"relu", "dropout", "identity", "tanh", "sigmoid", "gelu", "silu", "leaky_relu", "elu", "relu6", "hardtanh"}
)
#: elementwise ops of several tensors: their operands must share one channel layout
BINARY_KINDS = frozenset({"add", "mul", "sub", "div"})
OUTPUT_REASON = "it reaches the model's output"


@dataclass
class Group:
    """A set of channels shared by several tensors."""

    producers: list[str] = field(default_factory=list)  # width-capable nodes that output these channels
    members: list[str] = field(default_factory=list)  # every node whose output is in the group
    joins: list[str] = field(default_factory=list)  # binary ops that merged producers
    fixed: list[str] = field(default_factory=list)  # why its width cannot change

    @property
    def is_fixed(self) -> bool:
        return bool(self.fixed)


class ChannelGroups:
    """The channel groups of a graph: ``group_of(node_name)`` and the list of groups."""

    def __init__(self, graph: Graph) -> None:
        self._parent: list[int] = []
        self._space: dict[str, int] = {}
        self._raw: list[Group] = []
        for node in graph.nodes:
            self._visit(graph, node)
        self.groups: dict[int, Group] = {}
        for sid, raw in enumerate(self._raw):
            merged = self.groups.setdefault(self._find(sid), Group())
            merged.producers += raw.producers
            merged.members += raw.members
            merged.joins += raw.joins
            merged.fixed += raw.fixed

    # queries ------------------------------------------------------------------------------------------------
    def root(self, node: fx.Node | str) -> int | None:
        """The group id of a node's output, None for nodes that produce no tensor."""
        name = node if isinstance(node, str) else node.name
        sid = self._space.get(name)
        return None if sid is None else self._find(sid)

    def group(self, node: fx.Node | str) -> Group | None:
        root = self.root(node)
        return None if root is None else self.groups[root]

    # construction -------------------------------------------------------------------------------------------
    def _new(self, node: fx.Node) -> Group:
        sid = len(self._raw)
        self._parent.append(sid)
        self._raw.append(Group(members=[node.name]))
        self._space[node.name] = sid
        return self._raw[sid]

    def _find(self, sid: int) -> int:
        while self._parent[sid] != sid:
            self._parent[sid] = self._parent[self._parent[sid]]
            sid = self._parent[sid]
        return sid

    def _join(self, node: fx.Node, inputs: list[fx.Node]) -> None:
        """Put ``node``'s output into the (merged) group of its tensor inputs."""
        roots = [self._find(self._space[a.name]) for a in inputs]
        for r in roots[1:]:
            if r != roots[0]:
                self._parent[r] = roots[0]
        self._space[node.name] = roots[0]
        self._raw[roots[0]].members.append(node.name)
        if len(set(roots)) > 1:
            self._raw[roots[0]].joins.append(node.name)

    def _visit(self, graph: Graph, node: fx.Node) -> None:
        meta = graph.meta(node)
        tensor_inputs = [a for a in node.all_input_nodes if a.name in self._space]
        if node.op == "output":
            for a in tensor_inputs:
                self._raw[self._find(self._space[a.name])].fixed.append(OUTPUT_REASON)
            return
        if meta.output is None:  # a shape query or other non-tensor value
            return
        if node.op == "placeholder":
            self._new(node).fixed.append(f"it contains the model input {node.name!r}")
        elif node.op == "get_attr":
            if meta.output.numel > 1:  # scalar constants broadcast over any width
                self._new(node).fixed.append(f"it contains the constant tensor {node.name!r}")
        elif node.op == "call_module" and meta.kind in WIDTH_KINDS:
            self._new(node).producers.append(node.name)
        elif tensor_inputs and (
            meta.kind in UNARY_KINDS
            or meta.kind in BINARY_KINDS
            or (node.op == "call_module" and meta.kind in NORM_KINDS)
        ):
            self._join(node, tensor_inputs)
        else:
            self._opaque(node, meta.kind, tensor_inputs)

    def _opaque(self, node: fx.Node, kind: str, inputs: list[fx.Node]) -> None:
        """An op a width change cannot pass through: its inputs and its output keep their widths."""
        why = f"node {node.name!r} ({kind}) cannot carry a width change"
        for a in inputs:
            self._raw[self._find(self._space[a.name])].fixed.append(f"it feeds {why}")
        self._new(node).fixed.append(f"it is produced by {why}")
