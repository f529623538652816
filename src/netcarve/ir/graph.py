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
    #: sha256 of the model's file for a ``file.py:callable`` model (None: a registered or importable model, or
    #: a checkpoint written before it was recorded); ``model`` then holds the file's resolved path
    model_sha256: str | None = None

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


def module_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of the module's first floating-point parameter (or buffer); float32 when it has none."""
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def _module_device(module: nn.Module) -> torch.device:
    return next((t.device for t in (*module.parameters(), *module.buffers())), torch.device("cpu"))


def keep_unused(root: nn.Module, gm: fx.GraphModule) -> None:
    """Put into ``gm`` the submodules, parameters and buffers of ``root`` that its forward never reaches.

    torch.fx keeps only what the traced forward uses; netcarve keeps the rest at the same dotted names, so
    a graph holds every tensor of the model: its state dict matches the model's, and the analysis counts
    a never-called layer's parameters (as an ``unused`` record) — they are still part of the model.
    """
    held = {id(t) for t in (*gm.parameters(), *gm.buffers())}
    if all(id(t) in held for t in (*root.parameters(), *root.buffers())):
        return  # the forward reaches every tensor (the usual case)

    def tensors(module: nn.Module) -> list[torch.Tensor]:
        return [*module.parameters(), *module.buffers()]

    for name, sub in root.named_modules():
        if not name or not tensors(sub) or any(id(t) in held for t in tensors(sub)):
            continue
        if gm.add_submodule(name, sub):
            held.update(id(t) for t in tensors(sub))
    for name, tensor in (*root.named_parameters(), *root.named_buffers()):
        if id(tensor) in held:
            continue
        owner_name, _, attr = name.rpartition(".")
        owner = _owner(gm, owner_name)
        if owner is None or hasattr(owner, attr):
            continue
        if isinstance(tensor, nn.Parameter):
            owner.register_parameter(attr, tensor)
        else:
            owner.register_buffer(attr, tensor)
        held.add(id(tensor))


def _owner(gm: nn.Module, name: str) -> nn.Module | None:
    """The submodule at dotted ``name``, created empty where missing; None if an attribute is in the way."""
    module = gm
    for part in name.split(".") if name else ():
        child = getattr(module, part, None)
        if child is None:
            child = nn.Module()
            module.add_module(part, child)
        if not isinstance(child, nn.Module):
            return None
        module = child
    return module


def _first_line(exc: BaseException) -> str:
    """The exception's message without what torch.fx appends ("While executing …", the original traceback)."""
    return str(exc).strip().split("\n", 1)[0]


class Graph:
    """A traced model. Transform passes return a new ``Graph``; this one is never mutated by them."""

    def __init__(
        self,
        gm: fx.GraphModule,
        input_shape: tuple[int, ...],
        spec: ModelSpec | None = None,
        *,
        batch_size: int = 1,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.module = gm
        self.input_shape = tuple(input_shape)
        self.spec = spec
        if not all(META_KEY in n.meta for n in gm.graph.nodes):
            self.annotate(batch_size, dtype=dtype)

    # construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        input_shape: tuple[int, ...],
        spec: ModelSpec | None = None,
        *,
        batch_size: int = 1,
        dtype: torch.dtype | None = None,
    ) -> Graph:
        """Trace ``module`` with torch.fx; ``input_shape`` is one sample's shape (no batch dim).

        Shapes are recorded by one forward pass on zeros of ``(batch_size, *input_shape)`` in ``dtype``
        (default: the model's parameter dtype, so a float64 model runs in float64). Submodules and tensors
        that the forward never uses are kept in the graph's module (see :func:`keep_unused`).
        """
        if isinstance(module, fx.GraphModule):
            gm = module
        else:
            try:
                gm = fx.symbolic_trace(module)
            except Exception as exc:
                name = type(module).__name__
                raise ModelError(f"model {name} cannot be traced by torch.fx: {type(exc).__name__}: {exc}") from exc
            keep_unused(module, gm)
        return cls(gm, input_shape, spec, batch_size=batch_size, dtype=dtype)

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
    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype the graph was annotated with (its input placeholder's); the module's dtype otherwise."""
        for node in self.module.graph.nodes:
            meta = node.meta.get(META_KEY)
            if node.op == "placeholder" and meta is not None and meta.output is not None:
                dtype = getattr(torch, meta.output.dtype, None)
                if isinstance(dtype, torch.dtype):
                    return dtype
        return module_dtype(self.module)

    def annotate(self, batch_size: int = 1, keep_precision: bool = True, dtype: torch.dtype | None = None) -> None:
        """(Re)compute every node's NodeMeta: op kind and shapes (by running on zeros, BN stats untouched).

        The zeros are ``dtype``, by default the dtype of an earlier annotation, else the module's.
        """
        gm = self.module
        shapes: dict[str, TensorMeta] = {}
        dtype = dtype or self.input_dtype
        example = torch.zeros((batch_size, *self.input_shape), dtype=dtype, device=_module_device(gm))
        was_training = gm.training
        gm.eval()
        try:
            with torch.no_grad():
                _ShapeRecorder(gm, shapes).run(example)
        except Exception as exc:
            where = f"{(batch_size, *self.input_shape)} ({str(dtype).removeprefix('torch.')})"
            raise ModelError(
                f"forward pass on input shape {where} failed: {type(exc).__name__}: {_first_line(exc)}"
            ) from exc
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
