"""Which node gets which quantization: entry classification, resolution (default < type < name), signedness.

Rules (README: Transform):
- Entry keys are node names or op kinds. ``by`` decides only a key that is both (a functional ``relu``
  call is a node named ``relu``); a key that is neither is a ConfigError listing the graph's nodes and
  kinds; a known kind absent from the graph is a warning. (MASE ignored entries that did not match
  ``by``; netcarve applies them, so no entry is dropped silently.)
- :func:`netcarve.transforms.resolve.resolve` is the one resolution (shared with the width pass): the
  ``name`` entry of a node, else the ``type`` entry of its kind, else ``default``. The most specific entry
  wins as a whole; fields are not merged across entries.
- A quantizer ``name`` of None ("NA") leaves the node as it is. An operand whose ``<operand>_width`` is
  None stays float (e.g. weight-only quantization).
- ``<operand>_round`` / ``<operand>_overflow`` unset mean ``nearest_even`` / ``saturate``; another mode needs
  a quantizer that implements it (``integer``): on ``minifloat_ieee`` or ``binary`` it is a ConfigError
  naming the key.
- Quantizable kinds and their operands: linear, conv1d, conv2d, batch_norm1d, batch_norm2d (data_in,
  weight, bias, data_out) and relu (data_in, data_out), as ``nn`` module calls. The ``default`` entry
  applies to linear, conv1d, conv2d and relu (MASE's set); batch norms are quantized only when named by
  type or name. Naming any other node (or a functional call) with a quantizer is a ConfigError.
- An entry naming a node (by name or by type) may set only operands that node has: ``weight_width`` on a
  ReLU, or ``bias_width`` on a Linear without bias, is a ConfigError listing the node's operands. The
  ``default`` entry is a template: operands a node lacks are skipped.
- ``weight_frac_width`` / ``bias_frac_width = "auto"`` (integer quantizer): the spec's frac follows the tensor
  (:func:`netcarve.ir.fixedpoint.auto_frac`); the plan's ``described`` shows it resolved on the module's
  weights at planning time. ``"auto"`` on data_in/data_out is a ConfigError naming the key (the config's).
- Unsigned operands (values known to be ≥ 0): a ReLU's data_in and data_out, and the data_in of a node
  whose first input is produced by a ReLU. Everything else is signed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Set
from dataclasses import dataclass, field

import torch.fx as fx

from netcarve.config.passes import (
    AUTO_OPERANDS,
    DEFAULT_OVERFLOW,
    DEFAULT_ROUND,
    OPERANDS,
    QuantizePassConfig,
    QuantLayerConfig,
)
from netcarve.errors import ConfigError, UnknownNameError
from netcarve.ir.fixedpoint import check_modes
from netcarve.ir.graph import Graph
from netcarve.ir.opspecs import KindSet, OperandsView, spec_of_kind
from netcarve.ir.opspecs import kinds as registered_kinds
from netcarve.registry import did_you_mean
from netcarve.transforms.quantize.modules import can_quantize
from netcarve.transforms.quantize.quantizers import QUANTIZERS, QuantSpec
from netcarve.transforms.resolve import LayerEntries, resolve

log = logging.getLogger(__name__)

#: op kind → the operands its quantized module quantizes (a live view of the op registry's ``operands``)
QUANT_OPERANDS: Mapping[str, tuple[str, ...]] = OperandsView()
#: kinds the ``default`` entry applies to (the op registry's ``default_quantized``)
DEFAULT_KINDS: Set[str] = KindSet(lambda spec: spec.default_quantized)


@dataclass(frozen=True)
class QuantLayerPlan:
    """The quantization of one node: its quantizer and the spec of each quantized operand."""

    node: str
    kind: str
    target: str
    quantizer: str
    operands: Mapping[str, QuantSpec]
    #: operand → its precision as planned, an automatic frac resolved on the module's weight or bias at
    #: planning time (``integer(3,auto→4)``); training moves it, the export resolves it again
    described: Mapping[str, str] = field(default_factory=dict)


def _closest(key: str, candidates: list[str]) -> str:
    return did_you_mean(key, candidates, cutoff=0.6)


def known_kinds() -> set[str]:
    """Every registered op kind (:data:`netcarve.ir.opspecs.OPS`)."""
    return set(registered_kinds())


def classify_entries(config: QuantizePassConfig, graph: Graph) -> LayerEntries[QuantLayerConfig]:
    """Sort the config's entries into node-name and op-type entries.

    A key that is neither a node nor an op kind is a ConfigError listing the valid ones; a known op kind
    absent from this graph (``conv2d`` on an MLP) matches nothing and is logged as a warning.
    """
    names = [n.name for n in graph.compute_nodes()]
    kinds = sorted({graph.meta(n).kind for n in graph.compute_nodes()})
    by_type: dict[str, QuantLayerConfig] = {}
    by_name: dict[str, QuantLayerConfig] = {}
    for key, entry in config.entries.items():
        is_name, is_type = key in names, key in kinds or key in known_kinds()
        if is_name and (config.by == "name" or not is_type):
            by_name[key] = entry.config
        elif is_type:
            by_type[key] = entry.config
            if key not in kinds:
                log.warning("quantize config entry %r matches no node: the graph has no %s op", key, key)
        else:
            raise ConfigError(
                f"quantize config entry {key!r} is neither a node nor an op type of this graph"
                f"{_closest(key, names + kinds)} (nodes: {', '.join(names)}; types: {', '.join(kinds)})"
            )
    return LayerEntries(config.default.config, by_type, by_name)


def is_unsigned(graph: Graph, node: fx.Node, operand: str) -> bool:
    """The data_in/data_out of a kind marked ``unsigned`` (ReLU), and the data_in of a node it feeds, are
    unsigned (``OpSpec.unsigned``)."""
    if _unsigned_kind(graph, node):
        return operand in ("data_in", "data_out")
    if operand != "data_in" or not node.args:
        return False
    producer = node.args[0]
    return isinstance(producer, fx.Node) and _unsigned_kind(graph, producer)


def _unsigned_kind(graph: Graph, node: fx.Node) -> bool:
    spec = spec_of_kind(graph.meta(node).kind)
    return spec is not None and spec.unsigned


def _quantizable_error(graph: Graph, node: fx.Node, kind: str) -> str | None:
    if kind not in QUANT_OPERANDS:
        return (
            f"node {node.name!r} is a {kind!r} op, which cannot be quantized "
            f'(quantizable: {", ".join(QUANT_OPERANDS)}); set its entry\'s name to "NA"'
        )
    if node.op != "call_module":
        return f"node {node.name!r} is a functional {kind} call; only nn module calls can be quantized"
    module = graph.submodule(node)
    if not can_quantize(module):
        return f"node {node.name!r}: module class {type(module).__name__} has no quantized version"
    return None


def node_operands(graph: Graph, node: fx.Node) -> tuple[str, ...]:
    """The operands a quantizable node has: its kind's, less a weight or bias its module does not have."""
    module = graph.submodule(node)
    kind_operands = QUANT_OPERANDS[graph.meta(node).kind]
    return tuple(op for op in kind_operands if op not in ("weight", "bias") or getattr(module, op, None) is not None)


def _check_operands(graph: Graph, node: fx.Node, layer: QuantLayerConfig, entry: str) -> None:
    """An entry naming this node (or its type) must set only operands the node has."""
    operands = node_operands(graph, node)
    settings = {op: [f"{op}_{k}" for k, v in layer.operand(op).items() if v is not None] for op in OPERANDS}
    missing = [op for op in OPERANDS if op not in operands and settings[op]]
    if missing:
        kind = graph.meta(node).kind
        extra = [key for op in missing for key in settings[op]]
        raise ConfigError(
            f"quantize entry {entry!r} sets {', '.join(extra)}, but node {node.name!r} ({kind}) has no "
            f"{' or '.join(missing)} operand; its operands: {', '.join(operands)}"
        )


def _operand_specs(graph: Graph, node: fx.Node, layer: QuantLayerConfig) -> dict[str, QuantSpec]:
    kind = graph.meta(node).kind
    module = graph.submodule(node)
    try:
        quantizer = QUANTIZERS.get(str(layer.name))
    except UnknownNameError as exc:
        raise ConfigError(f"node {node.name!r}: {exc}") from exc
    specs: dict[str, QuantSpec] = {}
    for operand in QUANT_OPERANDS[kind]:
        s = layer.operand(operand)
        if s["width"] is None or (operand in ("weight", "bias") and getattr(module, operand, None) is None):
            continue
        modes = {"round": s["round"] or DEFAULT_ROUND, "overflow": s["overflow"] or DEFAULT_OVERFLOW}
        has_modes = getattr(quantizer, "modes", False)  # a user's quantizer may predate the modes
        check_modes(
            **modes, who=f"node {node.name!r}, {quantizer.name} quantizer", supported=has_modes, key=f"{operand}_"
        )
        extra: dict[str, str] = {}
        if s.get("granularity") is not None:
            if quantizer.name != "learned":
                raise ConfigError(
                    f"node {node.name!r}: {operand}_granularity applies to the learned quantizer, "
                    f"not {quantizer.name!r}"
                )
            extra["granularity"] = s["granularity"]
        try:
            specs[operand] = quantizer.make_spec(
                s["width"], s["frac_width"], s["exponent_width"], s["exponent_bias"],
                signed=not is_unsigned(graph, node, operand), **(modes if has_modes else {}), **extra,
            )  # fmt: skip
        except ConfigError as exc:
            raise ConfigError(f"node {node.name!r}, {operand}: {exc}") from exc
    return specs


def plan_quantization(graph: Graph, config: QuantizePassConfig) -> tuple[QuantLayerPlan, ...]:
    """The quantization of every node the config quantizes, in graph order (nothing is changed)."""
    entries = classify_entries(config, graph)
    plans: list[QuantLayerPlan] = []
    skipped: list[str] = []
    for node in graph.compute_nodes():
        kind = graph.meta(node).kind
        resolved = resolve(entries, node.name, kind)
        layer, explicit = resolved.config, resolved.explicit
        if layer.name is None or not (explicit or kind in DEFAULT_KINDS):
            continue
        problem = _quantizable_error(graph, node, kind)
        if problem is not None:
            if explicit:
                raise ConfigError(problem)
            skipped.append(node.name)
            continue
        if explicit:
            _check_operands(graph, node, layer, node.name if resolved.source == "name" else kind)
        specs = _operand_specs(graph, node, layer)
        if not specs:
            if explicit:
                widths = ", ".join(f"{op}_width" for op in QUANT_OPERANDS[kind])
                raise ConfigError(f"node {node.name!r}: quantizer {layer.name!r} is set but none of {widths} is")
            continue
        module = graph.submodule(node)
        described = {op: s.describe(getattr(module, op) if op in AUTO_OPERANDS else None) for op, s in specs.items()}
        quantizer = specs[next(iter(specs))].quantizer.name
        plans.append(QuantLayerPlan(node.name, kind, str(node.target), quantizer, specs, described))
    if skipped:
        log.warning("the default quantization does not apply to functional calls: %s", ", ".join(skipped))
    _check_shared_modules(graph, plans)
    return tuple(plans)


def _check_shared_modules(graph: Graph, plans: list[QuantLayerPlan]) -> None:
    """A module called by several nodes is quantized once: all its nodes must resolve alike."""
    callers: dict[str, list[str]] = {}
    for node in graph.compute_nodes():
        if node.op == "call_module":
            callers.setdefault(str(node.target), []).append(node.name)
    by_node = {p.node: p.operands for p in plans}
    for target, nodes in callers.items():
        seen = {repr(by_node.get(n)) for n in nodes}
        if len(nodes) > 1 and len(seen) > 1:
            raise ConfigError(
                f"module {target!r} is called by nodes {', '.join(nodes)}, which resolve to different "
                "quantizations; a shared module is quantized once, so give them the same entry"
            )
