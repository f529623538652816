"""The ``width`` transform (README: Transform): change the channel width of Linear/Conv layers, consistently.

``width_transform_pass(graph, config)`` (:mod:`.pass_`: the registered pass "width" over :func:`apply_width`)
and ``change_width(model_or_graph, config)`` take MASE's Lab 4 config (``by``, ``default``, per-node ``name`` =
input_only|output_only|both with ``channel_multiplier``), explicit ``in_multiplier``/``out_multiplier`` or a
target ``out_features``/``out_channels`` (see :mod:`.plan`).

The pass keeps the network consistent by itself (see :mod:`.channels`): a layer's new output width is
carried to every BatchNorm and elementwise op after it and to every consumer's inputs, through residual adds
too (whose producers must then agree). Inputs always follow their producer; an input multiplier in the
config is only checked. The model's input and output widths never change. A ``default`` or by-type entry
that would change a layer whose width is fixed (the output layer, typically) leaves that layer's outputs
alone — logged and listed in ``WidthInfo.protected``; an entry naming the layer is an error instead.

Initialisation (``init``) and the shrink criterion are described in :mod:`.resize`.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch.fx as fx
from torch import nn

from netcarve.config.passes import WidthPassConfig
from netcarve.device import available_memory
from netcarve.errors import ConfigError, PassError
from netcarve.ir.graph import Graph
from netcarve.ir.opspecs import require_input_shape, spec_of_kind
from netcarve.ir.passes import PassResult
from netcarve.transforms.width.channels import OUTPUT_REASON, ChannelGroups, Group
from netcarve.transforms.width.plan import (
    WidthLayerPlan,
    config_to_dict,
    layer_widths,
    parse_config,
    plan_layers,
    width_nodes,
)
from netcarve.transforms.width.resize import (
    ChannelMap,
    attr,
    block_map,
    choose_map,
    reinitialise,
    resize_layer,
    resize_norm,
)

__all__ = ["LayerWidth", "WidthInfo", "apply_width", "change_width", "config_to_dict", "parse_config"]

log = logging.getLogger(__name__)

#: the most channels a width transform may give a layer: 2**16, a thousand times the widest JSC layer; one
#: activation of that width at the evaluation batch size (EVAL_BATCH) already takes 2 GiB of float32
MAX_CHANNELS = 2**16
#: beyond this many channels not even the channel map is built (the detailed size check needs it)
MAX_MAPPED = 2**24
#: the batch size ``netcarve test``/``transform`` evaluate at by default (quoted when a layer is too wide)
EVAL_BATCH = 8192
#: the most parameters a width transform may grow a model to: 2**28 (1 GiB of float32 weights, 4 GiB to train
#: with Adam); below this when the memory available for training is smaller (see :func:`parameter_limit`)
MAX_PARAMETERS = 2**28
#: bytes one float32 parameter takes in training: the weight, its gradient and Adam's two moments
TRAINING_BYTES_PER_PARAMETER = 16


@dataclass(frozen=True)
class LayerWidth:
    """One Linear/Conv layer's widths before and after the transform."""

    name: str
    kind: str
    in_before: int
    out_before: int
    in_after: int
    out_after: int

    @property
    def changed(self) -> bool:
        return (self.in_before, self.out_before) != (self.in_after, self.out_after)


@dataclass(frozen=True)
class WidthInfo:
    """What the width pass did: every width-capable layer, and the layers whose outputs it protected."""

    layers: tuple[LayerWidth, ...]
    protected: tuple[str, ...]
    init: str

    @property
    def changed(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers if layer.changed)


def apply_width(graph: Graph, cfg: WidthPassConfig) -> PassResult[WidthInfo]:
    """Change the channel width of Linear/Conv layers; consumers and BatchNorms follow (net2net init).

    The implementation of the registered ``width`` pass (:mod:`.pass_`) and of :func:`change_width`.
    """
    plans = plan_layers(graph, cfg)
    groups = ChannelGroups(graph)
    new_widths, protected = _group_widths(graph, groups, plans)
    _check_inputs(graph, groups, plans, new_widths)
    maps = _channel_maps(graph, groups, new_widths)
    _check_size(graph, groups, maps)
    gm = copy.deepcopy(graph.module)
    _resize(graph, gm, groups, maps, cfg)
    spec = graph.spec.with_transform("width", config_to_dict(cfg)) if graph.spec is not None else None
    new = graph.derive(gm, spec)
    return PassResult(new, _info(graph, new, tuple(protected), cfg.init))


def change_width(
    model_or_graph: Graph | nn.Module,
    config: WidthPassConfig | Mapping[str, Any] | None = None,
    *,
    input_shape: tuple[int, ...] | None = None,
) -> Graph:
    """The width transform on a Graph or an nn.Module (traced; ``input_shape`` = one sample's shape,
    inferred from a first Linear/BatchNorm1d when not given). Returns a new Graph."""
    if isinstance(model_or_graph, Graph):
        graph = model_or_graph
    else:
        shape = input_shape if input_shape is not None else require_input_shape(model_or_graph)
        graph = Graph.from_module(copy.deepcopy(model_or_graph), shape)
    return apply_width(graph, parse_config(config)).graph


# --- decisions ------------------------------------------------------------------------------------------------
def _old_out(graph: Graph, name: str) -> int:
    return layer_widths(graph, graph.node(name))[1]


def _reasons(group: Group) -> str:
    return "; ".join(dict.fromkeys(group.fixed))


def _group_widths(
    graph: Graph, groups: ChannelGroups, plans: Mapping[str, WidthLayerPlan]
) -> tuple[dict[int, int], list[str]]:
    """The new width of every group with producers; the producers must agree, fixed groups keep theirs."""
    widths: dict[int, int] = {}
    protected: list[str] = []
    for root, group in groups.groups.items():
        wanted: dict[str, int] = {}
        for name in group.producers:
            plan, old = plans[name], _old_out(graph, name)
            new = plan.new_out if plan.new_out is not None else old
            if new != old and group.is_fixed:
                if plan.explicit:
                    raise ConfigError(
                        f"{name!r}: {plan.out_reason} would change its outputs {old} → {new}, but their width "
                        f"is fixed: {_reasons(group)}"
                        + (" (the number of classes)" if OUTPUT_REASON in group.fixed else "")
                    )
                log.info("width: %r keeps its %d outputs (%s); %s", name, old, plan.out_reason, _reasons(group))
                protected.append(name)
                new = old
            wanted[name] = new
        if len(set(wanted.values())) > 1:
            a, b = _disagreeing(wanted)
            raise ConfigError(
                f"layers {a!r} ({_describe(plans[a], wanted[a])}) and {b!r} ({_describe(plans[b], wanted[b])}) "
                f"feed the same channels (joined at {', '.join(repr(j) for j in group.joins)}): "
                "their output widths must agree"
            )
        if wanted:
            widths[root] = next(iter(wanted.values()))
    return widths, protected


def _disagreeing(wanted: Mapping[str, int]) -> tuple[str, str]:
    names = list(wanted)
    first = names[0]
    other = next(n for n in names if wanted[n] != wanted[first])
    return first, other


def _describe(plan: WidthLayerPlan, width: int) -> str:
    return f"{width} outputs, {plan.out_reason}" if plan.out_reason else f"{width} outputs, unchanged"


def _input_node(node: fx.Node) -> fx.Node:
    arg = node.args[0] if node.args else None
    if not isinstance(arg, fx.Node):
        raise PassError(f"{node.name!r}: its input is not a graph value; cannot resize it")
    return arg


def _check_inputs(
    graph: Graph, groups: ChannelGroups, plans: Mapping[str, WidthLayerPlan], widths: Mapping[int, int]
) -> None:
    """An input multiplier must match what the producer outputs (inputs follow their producer)."""
    for name, plan in plans.items():
        if plan.expected_in is None:
            continue
        feeding = _input_node(graph.node(name))
        root = groups.root(feeding)
        group = groups.groups[root] if root is not None else Group()
        actual = layer_widths(graph, graph.node(name))[0] if root is not None else None
        if root is not None and root in widths:  # channels of the group; features after a Flatten
            actual = widths[root] * groups.block(feeding)
        if actual == plan.expected_in:
            continue
        advice = f"inputs follow their producer, so drop the input multiplier of {name!r}"
        if group.producers:
            source = ", ".join(repr(p) for p in group.producers)
            raise ConfigError(
                f"{name!r}: {plan.in_reason} asks for {plan.expected_in} inputs, but its producer {source} "
                f"outputs {actual}; {advice} or change the outputs of {source}"
            )
        source = repr(group.members[0]) if group.members else "its input"
        raise ConfigError(
            f"{name!r}: {plan.in_reason} asks for {plan.expected_in} inputs, but its input comes from {source}, "
            f"whose width ({actual}) is fixed; {advice}"
        )


def _channel_maps(graph: Graph, groups: ChannelGroups, widths: Mapping[int, int]) -> dict[int, ChannelMap]:
    maps: dict[int, ChannelMap] = {}
    for root, new in widths.items():
        producers = groups.groups[root].producers
        old = _old_out(graph, producers[0])
        if new > MAX_MAPPED:  # even the channel map (8 bytes a channel) would be too large to build
            raise PassError(
                f"layer {producers[0]!r} would have {new:,} outputs ({old:,} now): too large to allocate "
                f"(at most {MAX_CHANNELS:,} channels a layer); choose a smaller multiplier or width"
            )
        cmap = choose_map(old, new, [graph.submodule(graph.node(p)) for p in producers])
        if cmap is not None:
            maps[root] = cmap
    return maps


# --- size check -----------------------------------------------------------------------------------------------
def parameter_limit() -> tuple[int, str]:
    """The most parameters a width transform may give a model, and where that limit comes from."""
    limit, why = MAX_PARAMETERS, ""
    available = available_memory()
    if available is not None and available // TRAINING_BYTES_PER_PARAMETER < limit:
        limit = available // TRAINING_BYTES_PER_PARAMETER
        why = f": {_gib(available)} of available memory at {TRAINING_BYTES_PER_PARAMETER} bytes a trained parameter"
    return limit, why


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.2f} GiB"


def _node_maps(
    graph: Graph, groups: ChannelGroups, maps: Mapping[int, ChannelMap], node: fx.Node, kind: str
) -> tuple[tuple[int | None, int | None], ChannelMap | None, ChannelMap | None]:
    """(input group, output group) of a Linear/Conv/BatchNorm node and the channel maps that resize it."""
    source = _input_node(node) if _is_producer(kind) else None
    in_root = groups.root(source) if source is not None else None
    in_map = maps.get(in_root) if in_root is not None else None
    if in_map is not None and source is not None:
        in_map = block_map(in_map, groups.block(source))  # Flatten → Linear: each channel is a block of inputs
    out_root = groups.root(node)
    out_map = maps.get(out_root) if out_root is not None else None
    return (in_root, out_root), in_map, out_map


@dataclass(frozen=True)
class _Resized:
    name: str
    #: what its input and output widths count ("inputs", "outputs" or "input channels", "output channels")
    sides: tuple[str, str]
    inputs: int | None  # None: unchanged
    outputs: int | None
    params: int

    def describe(self) -> str:
        return " and ".join(
            f"{n:,} {side}" for n, side in zip((self.inputs, self.outputs), self.sides, strict=True) if n
        )


def _check_size(graph: Graph, groups: ChannelGroups, maps: Mapping[int, ChannelMap]) -> None:
    """Refuse, before allocating anything, a layer widened beyond MAX_CHANNELS or a model grown beyond
    :func:`parameter_limit` (counted from the new shapes: weights, biases, BatchNorm affine parameters)."""
    before = sum(p.numel() for p in graph.module.parameters())
    after = before
    resized: list[_Resized] = []
    seen: set[str] = set()
    for node in graph.nodes:
        kind = graph.meta(node).kind
        if node.op != "call_module" or not _resizable(kind) or str(node.target) in seen:
            continue
        _, in_map, out_map = _node_maps(graph, groups, maps, node, kind)
        if in_map is None and out_map is None:
            continue
        seen.add(str(node.target))
        module = graph.submodule(node)
        own = list(module.parameters(recurse=False))
        if _is_producer(kind):
            weight = attr(module, "weight")
            n_in = in_map.new if in_map is not None else int(weight.shape[1])
            n_out = out_map.new if out_map is not None else int(weight.shape[0])
            params = n_out * n_in * math.prod(weight.shape[2:]) + (n_out if attr(module, "bias") is not None else 0)
            new_in = in_map.new if in_map is not None else None
            resized.append(
                _Resized(node.name, _sides(kind), new_in, out_map.new if out_map is not None else None, params)
            )
        else:
            params = (out_map.new if out_map is not None else 0) * len(own)
        after += params - sum(p.numel() for p in own)
    wide = max(resized, key=lambda r: r.outputs or 0, default=None)
    if wide is not None and wide.outputs is not None and wide.outputs > MAX_CHANNELS:
        raise PassError(
            f"layer {wide.name!r} would have {wide.describe()} ({wide.params:,} parameters, "
            f"{_gib(4 * wide.params)} of float32; {_gib(4 * EVAL_BATCH * wide.outputs)} for its outputs at a batch "
            f"of {EVAL_BATCH}): too large to allocate (at most {MAX_CHANNELS:,} channels a layer); choose a "
            "smaller multiplier or width"
        )
    limit, why = parameter_limit()
    if after <= max(before, limit) or not resized:
        return
    big = max(resized, key=lambda r: r.params)
    raise PassError(
        f"layer {big.name!r} would have {big.describe()} ({big.params:,} parameters, {_gib(4 * big.params)} "
        f"of float32; the whole model {after:,} parameters, {_gib(4 * after)}): too large to allocate "
        f"(at most {limit:,} parameters{why}); choose a smaller multiplier or width"
    )


def _is_allocation_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate" in text


# --- rebuilding ----------------------------------------------------------------------------------------------
def _resize(
    graph: Graph, gm: fx.GraphModule, groups: ChannelGroups, maps: Mapping[int, ChannelMap], cfg: WidthPassConfig
) -> None:
    """Resize, on ``gm`` (a copy of graph.module), every module a changed group touches."""
    done: dict[str, tuple[int | None, ...]] = {}
    for index, node in enumerate(graph.nodes):
        kind = graph.meta(node).kind
        if node.op != "call_module" or not _resizable(kind):
            continue
        roots, in_map, out_map = _node_maps(graph, groups, maps, node, kind)
        if in_map is None and out_map is None:
            continue
        target = str(node.target)
        if target in done:
            if done[target] != roots:
                raise PassError(f"module {target!r} is called by several nodes with different widths")
            continue
        done[target] = roots
        module = gm.get_submodule(target)
        try:
            if _is_producer(kind):
                resize_layer(module, kind, node.name, in_map, out_map, split=cfg.init == "net2net")
            elif out_map is not None:
                resize_norm(module, kind, out_map)
            if cfg.init == "random":
                reinitialise(module, cfg.seed + index)
        except (MemoryError, RuntimeError) as exc:  # torch reports a failed allocation as a RuntimeError
            if not _is_allocation_failure(exc):
                raise
            widths = f"{in_map.new if in_map else '-'} inputs, {out_map.new if out_map else '-'} outputs"
            raise PassError(
                f"layer {node.name!r} ({widths}): too large to allocate: {str(exc).splitlines()[0]}"
            ) from exc


def _info(before: Graph, after: Graph, protected: tuple[str, ...], init: str) -> WidthInfo:
    layers = []
    for node in width_nodes(before):
        old, new = layer_widths(before, node), layer_widths(after, after.node(node.name))
        layers.append(LayerWidth(node.name, before.meta(node).kind, old[0], old[1], new[0], new[1]))
    return WidthInfo(tuple(layers), protected, init)


def _is_producer(kind: str) -> bool:
    spec = spec_of_kind(kind)
    return spec is not None and spec.channels == "producer"


def _sides(kind: str) -> tuple[str, str]:
    """How a producer's widths read in a message: by its width attributes (in_features: "inputs";
    in_channels: "input channels")."""
    spec = spec_of_kind(kind)
    if spec is not None and spec.width_attrs is not None and spec.width_attrs[1].endswith("channels"):
        return ("input channels", "output channels")
    return ("inputs", "outputs")


def _resizable(kind: str) -> bool:
    """Modules the pass resizes: producers and per-channel modules with width attributes (BatchNorm)."""
    spec = spec_of_kind(kind)
    return spec is not None and spec.width_attrs is not None and spec.channels in ("producer", "per_channel")
