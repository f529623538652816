"""``Graph``: a torch.fx GraphModule plus typed per-node metadata and the model's provenance."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from netcarve.errors import ModelError
from netcarve.ir.meta import META_KEY, NodeMeta, Precision, TensorMeta
from netcarve.ir.ops import function_kind, method_kind, module_kind


@dataclass(frozen=True)
class ModelSpec:
    """Where a graph came from: base model name, dataset info and the transforms applied, in order."""

    model: str
    dataset: dict[str, Any]
    transforms: tuple[tuple[str, dict[str, Any]], ...] = field(default_factory=tuple)

    def with_transform(self, name: str, config: dict[str, Any]) -> ModelSpec:
        return replace(self, transforms=(*self.transforms, (name, config)))


def _kind_and_target(gm: fx.GraphModule, node: fx.Node) -> tuple[str, str]:
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        return module_kind(module), type(module).__name__
    if node.op == "call_function":
        name = getattr(node.target, "__name__", str(node.target))
        return function_kind(node.target), name
    if node.op == "call_method":
        return method_kind(str(node.target)), str(node.target)
    return node.op, str(node.target)


class Graph:
    """A traced model. Transform passes return a new ``Graph``; this one is never mutated by them."""

    def __init__(self, gm: fx.GraphModule, input_shape: tuple[int, ...], spec: ModelSpec | None = None) -> None:
        self.module = gm
        self.input_shape = tuple(input_shape)
        self.spec = spec
        if not all(META_KEY in n.meta for n in gm.graph.nodes):
            self.annotate()

    # construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_module(cls, module: nn.Module, input_shape: tuple[int, ...], spec: ModelSpec | None = None) -> Graph:
        """Trace ``module`` with torch.fx; ``input_shape`` is one sample's shape (no batch dim)."""
        if isinstance(module, fx.GraphModule):
            gm = module
        else:
            try:
                gm = fx.symbolic_trace(module)
            except Exception as exc:
                name = type(module).__name__
                raise ModelError(f"model {name} cannot be traced by torch.fx: {type(exc).__name__}: {exc}") from None
        return cls(gm, input_shape, spec)

    def copy(self) -> Graph:
        """A deep copy (weights and metadata) that shares nothing with this graph."""
        return Graph(copy.deepcopy(self.module), self.input_shape, self.spec)

    def derive(self, gm: fx.GraphModule, spec: ModelSpec | None = None) -> Graph:
        """A new Graph over ``gm`` with this graph's input shape, re-annotated."""
        new = Graph.__new__(Graph)
        new.module, new.input_shape, new.spec = gm, self.input_shape, spec if spec is not None else self.spec
        new.annotate(keep_precision=True)
        return new

    # metadata -----------------------------------------------------------------------------------------------
    def annotate(self, batch_size: int = 1, keep_precision: bool = True) -> None:
        """(Re)compute every node's NodeMeta: op kind and shapes (by running on zeros, BN stats untouched)."""
        gm = self.module
        shapes: dict[str, TensorMeta] = {}
        example = torch.zeros((batch_size, *self.input_shape))
        was_training = gm.training
        gm.eval()
        try:
            with torch.no_grad():
                _ShapeRecorder(gm, shapes).run(example)
        except Exception as exc:
            raise ModelError(
                f"forward pass on input shape {(batch_size, *self.input_shape)} failed: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            gm.train(was_training)
        for node in gm.graph.nodes:
            kind, target = _kind_and_target(gm, node)
            inputs = tuple(shapes[a.name] for a in node.all_input_nodes if a.name in shapes)
            old = node.meta.get(META_KEY)
            precision: Mapping[str, Precision] = old.precision if (keep_precision and old is not None) else {}
            node.meta[META_KEY] = NodeMeta(node.name, node.op, kind, target, inputs, shapes.get(node.name), precision)

    def meta(self, node: fx.Node | str) -> NodeMeta:
        n = self.node(node) if isinstance(node, str) else node
        return n.meta[META_KEY]

    def set_precision(self, node: fx.Node | str, precision: Mapping[str, Precision]) -> None:
        n = self.node(node) if isinstance(node, str) else node
        n.meta[META_KEY] = replace(self.meta(n), precision=dict(precision))

    # access -------------------------------------------------------------------------------------------------
    @property
    def nodes(self) -> Iterator[fx.Node]:
        return iter(self.module.graph.nodes)

    def node(self, name: str) -> fx.Node:
        for n in self.module.graph.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def node_names(self) -> list[str]:
        return [n.name for n in self.module.graph.nodes]

    def submodule(self, node: fx.Node) -> nn.Module:
        return self.module.get_submodule(str(node.target))

    def compute_nodes(self) -> list[fx.Node]:
        return [n for n in self.module.graph.nodes if n.op not in ("placeholder", "output", "get_attr")]

    def kinds(self) -> set[str]:
        return {self.meta(n).kind for n in self.compute_nodes()}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def __repr__(self) -> str:
        return f"Graph({len(self.compute_nodes())} nodes, input {self.input_shape})"


class _ShapeRecorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, out: dict[str, TensorMeta]) -> None:
        super().__init__(gm)
        self.out = out

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            self.out[n.name] = TensorMeta.of(result)
        return result
