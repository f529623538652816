"""Width config → one :class:`WidthLayerPlan` per width-capable node (what its outputs become, what its inputs
are checked against), with the config's entries validated against the graph.

Resolution (MASE's; :func:`netcarve.transforms.resolve.resolve`, shared with quantize): ``by = "name"`` looks
a node up by its fx name, ``by = "type"`` by its op kind (``linear``, ``conv1d``, ``conv2d``); a node without an
entry gets ``default``.

Per entry:
- outputs: ``out_features``/``out_channels`` (a target width) or ``out_multiplier`` or, with ``name`` =
  ``output_only``/``both``, ``channel_multiplier`` set the layer's new output width (several given ⇒ they
  must agree);
- inputs always follow their producer (README: Transform): ``in_multiplier``, or ``channel_multiplier`` with
  ``name = "input_only"``, is only *checked* against the producer's new width. ``both`` scales the outputs
  only, so "input ×2, output ×4" is ``both`` × 4 behind a producer widened × 2;
- ``name`` None ("NA") means: leave the layer alone (a ``channel_multiplier`` there is ignored, as in MASE).

New widths are ``round(old × multiplier)`` (Python's round, half to even) and must be at least 1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch.fx as fx

from netcarve.config.passes import WidthLayerConfig, WidthPassConfig, coerce_pass_config
from netcarve.errors import ConfigError
from netcarve.ir.graph import Graph
from netcarve.ir.ops import WIDTH_KINDS
from netcarve.registry import did_you_mean
from netcarve.transforms.resolve import LayerEntries, Source, resolve
from netcarve.transforms.width.resize import attr, width_attrs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WidthLayerPlan:
    """What the config asks of one width-capable node."""

    node: str
    source: Source  # "name" | "type" | "default": where the entry came from
    new_out: int | None  # None: outputs unchanged
    out_reason: str  # e.g. "output_only channel_multiplier 2", for messages
    expected_in: int | None  # None: inputs not checked
    in_reason: str
    parent_block_name: str | None = None

    @property
    def explicit(self) -> bool:
        """True when the entry names this node (by = "name"), not a type or the default."""
        return self.source == "name"


def parse_config(config: WidthPassConfig | Mapping[str, Any] | None) -> WidthPassConfig:
    """A WidthPassConfig from a MASE-format dict (``"NA"`` → None), a WidthPassConfig or None (identity)."""
    return coerce_pass_config(WidthPassConfig, config, "passes.width")


def config_to_dict(config: WidthPassConfig) -> dict[str, Any]:
    """The config as a plain MASE-format dict (no None values, so it is TOML-writable)."""
    out: dict[str, Any] = {"by": config.by, "init": config.init, "seed": config.seed}
    out["default"] = {"config": config.default.config.model_dump(exclude_none=True)}
    for key, entry in config.entries.items():
        out[key] = {"config": entry.config.model_dump(exclude_none=True)}
    return out


def width_nodes(graph: Graph) -> list[fx.Node]:
    """Nodes whose module can change width: Linear/Conv modules (kind in WIDTH_KINDS, call_module)."""
    return [n for n in graph.nodes if n.op == "call_module" and graph.meta(n).kind in WIDTH_KINDS]


def check_entries(graph: Graph, config: WidthPassConfig) -> None:
    """Every entry must name a width-capable node (by = "name") or kind (by = "type")."""
    capable = [n.name for n in width_nodes(graph)]
    listing = f"width-capable nodes: {', '.join(capable) or '(none)'}"
    kinds = {n.name: graph.meta(n).kind for n in graph.nodes}
    for key in config.entries:
        if config.by == "type":
            if key not in WIDTH_KINDS:
                raise ConfigError(
                    f"width entry {key!r}: only {', '.join(sorted(WIDTH_KINDS))} layers can change width "
                    f"(by = 'type'); {listing}"
                )
        elif key not in kinds:
            hint = did_you_mean(key, capable, n=2)
            if key in WIDTH_KINDS:
                hint = f"; {key!r} is an op type: set by = 'type'"
            by_target = [n.name for n in graph.nodes if n.op == "call_module" and n.target == key]
            if by_target:
                hint = f"; module {key!r} is the node {by_target[0]!r} (entries use fx node names)"
            raise ConfigError(f"width entry {key!r} names no node of the graph{hint}; {listing}")
        elif key not in capable:
            raise ConfigError(
                f"width entry {key!r} names a {kinds[key]} node, but only Linear/Conv layers can change "
                f"width; {listing}"
            )


def _scaled(node: str, old: int, multiplier: float, what: str) -> int:
    new = round(old * multiplier)
    if new < 1:
        raise ConfigError(f"{node!r}: {what} gives round({old} × {multiplier:g}) = {new} channels; at least 1 needed")
    return int(new)


def _agreeing(node: str, side: str, candidates: list[tuple[str, int]]) -> tuple[int | None, str]:
    if not candidates:
        return None, ""
    if len({w for _, w in candidates}) > 1:
        text = ", ".join(f"{why} → {w}" for why, w in candidates)
        raise ConfigError(f"{node!r}: contradictory {side} widths in its width entry: {text}")
    return candidates[0][1], candidates[0][0]


def plan_layer(node: str, source: Source, cfg: WidthLayerConfig, old_in: int, old_out: int) -> WidthLayerPlan:
    """Resolve one layer's entry into its new output width and the input width it expects (if any)."""
    outs: list[tuple[str, int]] = []
    ins: list[tuple[str, int]] = []
    for key in ("out_features", "out_channels"):
        if getattr(cfg, key) is not None:
            outs.append((f"{key} {getattr(cfg, key)}", int(getattr(cfg, key))))
    if cfg.out_multiplier is not None:
        outs.append(
            (f"out_multiplier {cfg.out_multiplier:g}", _scaled(node, old_out, cfg.out_multiplier, "out_multiplier"))
        )
    if cfg.in_multiplier is not None:
        ins.append((f"in_multiplier {cfg.in_multiplier:g}", _scaled(node, old_in, cfg.in_multiplier, "in_multiplier")))
    cm = cfg.channel_multiplier
    if cfg.name == "input_only" and outs:
        raise ConfigError(
            f"{node!r}: name = 'input_only' leaves the outputs alone, but its entry sets "
            f"{', '.join(why for why, _ in outs)}"
        )
    if cm is not None:
        what = f"{cfg.name} channel_multiplier {cm:g}"
        if cfg.name in ("output_only", "both"):
            outs.append((what, _scaled(node, old_out, cm, what)))
        elif cfg.name == "input_only":
            ins.append((what, _scaled(node, old_in, cm, what)))
        elif cm != 1:
            log.warning(
                "%r: channel_multiplier %g ignored: its entry has no name (input_only|output_only|both)", node, cm
            )
    new_out, out_reason = _agreeing(node, "output", outs)
    expected_in, in_reason = _agreeing(node, "input", ins)
    return WidthLayerPlan(node, source, new_out, out_reason, expected_in, in_reason, cfg.parent_block_name)


def plan_layers(graph: Graph, config: WidthPassConfig) -> dict[str, WidthLayerPlan]:
    """One plan per width-capable node, in graph order."""
    check_entries(graph, config)
    plans: dict[str, WidthLayerPlan] = {}
    layer_configs = {key: entry.config for key, entry in config.entries.items()}
    entries = LayerEntries.keyed_by(config.by, config.default.config, layer_configs)
    for node in width_nodes(graph):
        resolved = resolve(entries, node.name, graph.meta(node).kind)
        old_in, old_out = layer_widths(graph, node)
        plans[node.name] = plan_layer(node.name, resolved.source, resolved.config, old_in, old_out)
    _warn_parent_blocks(graph, plans)
    return plans


def layer_widths(graph: Graph, node: fx.Node) -> tuple[int, int]:
    """(in, out) width of a Linear/Conv node, read from its module."""
    module = graph.submodule(node)
    in_attr, out_attr = width_attrs(graph.meta(node).kind)
    return int(attr(module, in_attr)), int(attr(module, out_attr))


def ancestors(node: fx.Node) -> set[str]:
    seen: set[str] = set()
    stack = list(node.all_input_nodes)
    while stack:
        n = stack.pop()
        if n.name not in seen:
            seen.add(n.name)
            stack.extend(n.all_input_nodes)
    return seen


def _warn_parent_blocks(graph: Graph, plans: Mapping[str, WidthLayerPlan]) -> None:
    """``parent_block_name`` is MASE's way to name a layer's producer; netcarve finds it itself."""
    for plan in plans.values():
        parent = plan.parent_block_name
        if parent is not None and parent not in ancestors(graph.node(plan.node)):
            log.warning(
                "%r: parent_block_name %r is not upstream of it (ignored: inputs follow their producer)",
                plan.node,
                parent,
            )
