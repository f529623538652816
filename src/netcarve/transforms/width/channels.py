"""Channel groups: which tensors of a graph must share one channel layout.

Every tensor-valued node's output lives in a *channel group*. How a node treats channels is its op spec's
``channels`` (:mod:`netcarve.ir.opspecs`): a ``producer`` (Linear/Conv module) starts a new group (its
outputs); ``per_channel`` ops (BatchNorm, pooling) and ``elementwise`` ops (ReLU, dropout, …) stay in their
input's group; a ``join`` (add, mul, residual connections) merges the groups of its operands; a ``flatten``
(``nn.Flatten``, ``x.view(B, -1)``) of a (B, C, *S) tensor stays in its input's group with each channel now a
*block* of S = ∏S consecutive features (``block(node)``), which a consuming Linear resizes as blocks. So one
group is "a set of channels", with the layers that produce it and every BatchNorm and consumer that has to
follow it.

A group is *fixed* (its width cannot change) when it contains the model input, reaches the model output,
or passes through an op netcarve cannot carry a width change through (reshape, cat, functional layers with
their own weights, unknown modules, …); the reasons are kept for the error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.fx as fx

from netcarve.ir.graph import Graph
from netcarve.ir.meta import NodeMeta
from netcarve.ir.opspecs import OpSpec, spec_of_kind

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
        self._block: dict[str, int] = {}
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

    def block(self, node: fx.Node | str) -> int:
        """How many consecutive features of a node's output make one channel of its group (1 unless flattened)."""
        return self._block.get(node if isinstance(node, str) else node.name, 1)

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
        spec = spec_of_kind(meta.kind) if node.op in ("call_module", "call_function", "call_method") else None
        if node.op == "placeholder":
            self._new(node).fixed.append(f"it contains the model input {node.name!r}")
        elif node.op == "get_attr":
            if meta.output.numel > 1:  # scalar constants broadcast over any width
                self._new(node).fixed.append(f"it contains the constant tensor {node.name!r}")
        elif spec is not None and spec.channels == "producer" and node.op == "call_module":
            self._new(node).producers.append(node.name)
        elif spec is None or not tensor_inputs or not self._passes(node, spec, meta, tensor_inputs):
            self._opaque(node, meta.kind, tensor_inputs)

    def _passes(self, node: fx.Node, spec: OpSpec, meta: NodeMeta, inputs: list[fx.Node]) -> bool:
        """Join ``node`` to its inputs' group when a width change passes through it; False when it cannot."""
        blocks = {self.block(a) for a in inputs}
        if len(blocks) > 1:
            return False
        block = blocks.pop()
        if spec.channels == "per_channel":
            # a module's parameters follow the channels; a functional call must not carry weights of its own
            if block != 1 or (node.op != "call_module" and "weight" in spec.operands):
                return False
        elif spec.channels == "flatten":
            spatial = _flattened(meta)
            if spatial is None or len(inputs) != 1 or (spec.reshapes and not _infers_features(node)):
                return False
            block *= spatial
        elif spec.channels not in ("elementwise", "join"):
            return False
        self._join(node, inputs)
        self._block[node.name] = block
        return True

    def _opaque(self, node: fx.Node, kind: str, inputs: list[fx.Node]) -> None:
        """An op a width change cannot pass through: its inputs and its output keep their widths."""
        why = f"node {node.name!r} ({kind}) cannot carry a width change"
        for a in inputs:
            self._raw[self._find(self._space[a.name])].fixed.append(f"it feeds {why}")
        self._new(node).fixed.append(f"it is produced by {why}")


def _flattened(meta: NodeMeta) -> int | None:
    """S when the node turns (B, C, *S) into (B, C·∏S) (channel-major, so channel c is one block), else None."""
    if not meta.inputs or meta.output is None:
        return None
    before, after = meta.inputs[0].shape, meta.output.shape
    if len(before) < 2 or len(after) != 2 or after[0] != before[0]:
        return None
    spatial = 1
    for s in before[2:]:
        spatial *= s
    return spatial if after[1] == before[1] * spatial else None


def _infers_features(node: fx.Node) -> bool:
    """A call of a kind that ``reshapes`` (view/reshape) must leave its feature size to torch
    (``x.view(B, -1)``): a literal size (``x.view(-1, 6)``) would not follow a width change. ``nn.Flatten``
    and ``torch.flatten`` always do."""
    shape = node.args[1:]
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return len(shape) == 2 and isinstance(shape[1], int) and shape[1] == -1
