"""Per-element fixed-point formats: the one way to give an integer-quantized operand a width and a frac per
element (or per output channel, or per feature), and to read them back for a checkpoint.

The operand must already be quantized with ``integer`` (the quantize pass): its sign and its round and
overflow modes stay; only the widths and fracs become tensors (:class:`ElementFormats` on its
:class:`QuantSpec`). A learned quantizer (issue 22) ends in exactly this state, so a trained model exports
and analyses like any integer-quantized one. Width 0 prunes the element: it is exactly 0.

Shapes broadcast against the operand: a Linear's weight ``(out, in)`` or ``(out, 1)`` (per output channel),
its bias ``(out,)``; ``data_in``/``data_out`` against one sample, ``(features,)`` for a Linear, ``(C, 1, 1)``
or ``(C, H, W)`` for a Conv2d. The batch dimension never has formats of its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace

import torch

from netcarve.errors import ConfigError
from netcarve.ir.graph import Graph
from netcarve.ir.graph_state import ELEMENT_FORMATS, register_state
from netcarve.transforms.quantize.quantizers import ElementFormats, QuantSpec

#: node → operand → {"width": int64 tensor, "frac": int64 tensor}: what a checkpoint stores
StoredFormats = dict[str, dict[str, dict[str, torch.Tensor]]]


def _as_int(name: str, value: torch.Tensor | int, where: str) -> torch.Tensor:
    t = torch.as_tensor(value).detach().cpu()
    if t.is_floating_point() and bool((t != t.round()).any()):
        raise ConfigError(f"{where}: {name} must hold integers")
    return t.to(torch.int64)


def operand_shape(graph: Graph, node: str, operand: str) -> tuple[int, ...]:
    """The shape a format of ``operand`` broadcasts against: the parameter's, or one sample's input (data_in)
    or output (data_out)."""
    n = graph.node(node)
    if operand in ("weight", "bias"):
        return tuple(getattr(graph.submodule(n), operand).shape)
    meta = graph.meta(n)
    tensor = meta.inputs[0] if operand == "data_in" and meta.inputs else meta.output
    if tensor is None:
        raise ConfigError(f"node {node!r}: the shape of its {operand} is unknown")
    return tuple(tensor.shape[1:])


def _checked(graph: Graph, node: str, operand: str, width: torch.Tensor, frac: torch.Tensor) -> ElementFormats:
    where = f"set_formats: node {node!r}, {operand}"
    w, f = _as_int("width", width, where), _as_int("frac", frac, where)
    if bool((w < 0).any()):
        raise ConfigError(f"{where}: widths must be ≥ 0 (0 prunes an element), got {int(w.min())}")
    shape = operand_shape(graph, node, operand)
    try:
        full = torch.broadcast_shapes(w.shape, f.shape, shape)
    except RuntimeError as exc:
        raise ConfigError(
            f"{where}: width {tuple(w.shape)} and frac {tuple(f.shape)} do not broadcast against {shape}"
        ) from exc
    if full != torch.Size(shape):
        raise ConfigError(f"{where}: width {tuple(w.shape)} and frac {tuple(f.shape)} are larger than {shape}")
    return ElementFormats(w, f)


def with_formats(spec: QuantSpec, formats: ElementFormats) -> QuantSpec:
    """``spec`` with per-element ``formats``: its ``width``/``frac_width`` become the largest element's (the
    formats fix every frac, so an automatic one no longer applies)."""
    width, frac = torch.broadcast_tensors(formats.width, formats.frac)
    return replace(spec, width=int(width.max()), frac_width=int(frac.max()), formats=formats, auto_frac=False)


def set_formats(
    graph: Graph,
    node: str,
    operand: str,
    width: torch.Tensor | int,
    frac: torch.Tensor | int,
) -> Graph:
    """A new graph where ``node``'s ``operand`` has per-element formats ``width`` and ``frac`` (integer
    tensors broadcasting against it; width 0 prunes). The input graph is not changed. ConfigError when the
    node has no integer-quantized ``operand`` or the shapes do not fit."""
    return set_many(graph, {node: {operand: {"width": torch.as_tensor(width), "frac": torch.as_tensor(frac)}}})


def set_many(graph: Graph, formats: Mapping[str, Mapping[str, Mapping[str, torch.Tensor]]]) -> Graph:
    """:func:`set_formats` for several operands at once (``node → operand → {"width", "frac"}``, the layout
    :func:`stored_formats` returns and a checkpoint keeps)."""
    if not formats:
        return graph
    gm = copy.deepcopy(graph.module)
    new = graph.derive(gm)
    for node, operands in formats.items():
        try:
            n = new.node(node)
        except KeyError as exc:
            raise ConfigError(f"set_formats: the graph has no node {node!r}") from exc
        module = new.submodule(n) if n.op == "call_module" else None
        quant: dict[str, QuantSpec] = dict(getattr(module, "quant", {}))
        for operand, entry in operands.items():
            spec = quant.get(operand)
            if spec is None or spec.quantizer.name != "integer":
                raise ConfigError(
                    f"set_formats: node {node!r} has no integer-quantized {operand}; quantize it with the "
                    "integer quantizer first"
                )
            quant[operand] = with_formats(spec, _checked(new, node, operand, entry["width"], entry["frac"]))
        assert module is not None
        module.quant = quant  # type: ignore[assignment]
        new.set_precision(n, {op: s.precision() for op, s in quant.items()})
    return new


def stored_formats(graph: Graph) -> StoredFormats:
    """Every per-element format of ``graph`` (node → operand → width and frac tensors), for a checkpoint."""
    out: StoredFormats = {}
    for n in graph.compute_nodes():
        if n.op != "call_module":
            continue
        for operand, spec in getattr(graph.submodule(n), "quant", {}).items():
            if getattr(spec, "formats", None) is not None:
                f = spec.formats
                out.setdefault(n.name, {})[operand] = {"width": f.width.clone(), "frac": f.frac.clone()}
    return out


# a checkpoint saves and restores them through the graph-state registry (train/ does not import transforms/)
register_state(ELEMENT_FORMATS, stored_formats, set_many)
