"""``graph/quantize/mixed_precision_ptq``: per-node (by name) or per-op-type (by type) quantization choices.

As in MASE, every quantizable target gets its own choices: its seed, or else the ``default`` seed. The
``default`` seed covers the kinds the quantize pass's own default applies to (linear, conv, relu); batch
norms are searched only when a seed names them. A ``default`` seed without choices is passed as the pass's
``default`` entry as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netcarve.config.passes import BETA_KEYS, QuantizePassConfig, QuantLayerConfig
from netcarve.config.search import SeedEntry
from netcarve.errors import ConfigError
from netcarve.ir.graph import Graph
from netcarve.search.spaces.base import EntrySpace, PassSpace
from netcarve.search.spaces.seeds import Targets, check_leaves, entry_space, is_fixed, own_space, used_seeds


def quantize_targets(graph: Graph) -> tuple[Targets, tuple[str, ...]]:
    """The quantizable nodes and kinds of ``graph``, and the targets the ``default`` seed applies to."""
    from netcarve.transforms.quantize.modules import can_quantize
    from netcarve.transforms.quantize.plan import DEFAULT_KINDS, QUANT_OPERANDS

    nodes: list[str] = []
    kinds: list[str] = []
    for node in graph.compute_nodes():
        kind = graph.meta(node).kind
        if node.op == "call_module" and kind in QUANT_OPERANDS and can_quantize(graph.submodule(node)):
            nodes.append(node.name)
            if kind not in kinds:
                kinds.append(kind)
    targets = Targets(tuple(nodes), tuple(kinds), "quantizable")
    return targets, tuple(DEFAULT_KINDS)


def _clean(config: dict[str, Any]) -> dict[str, Any]:
    """A layer left float ("NA") needs no widths: equal candidates get equal configs."""
    return {"name": None} if config.get("name") is None else config


def _beta_only_if_learned(config: dict[str, Any]) -> dict[str, Any]:
    """The beta keys weigh EBOPs in the loss of learned quantizers only: a candidate without one gets none, so
    candidates differing only in beta are one configuration (reused, not retrained per beta)."""
    if any(isinstance(e, dict) and e.get("config", {}).get("name") == "learned" for e in config.values()):
        return config
    return {k: v for k, v in config.items() if k not in BETA_KEYS}


def _own_leaves(leaves: dict[str, list[Any]], graph: Graph, nodes: list[str]) -> dict[str, list[Any]]:
    """The ``default`` seed's leaves as an entry for ``nodes``: without the settings of operands they lack (a
    ReLU gets no ``weight_width`` choices; the quantize pass refuses them in an entry that names it)."""
    from netcarve.config.passes import OPERANDS
    from netcarve.transforms.quantize.plan import node_operands

    have = set(OPERANDS).intersection(*(node_operands(graph, graph.node(n)) for n in nodes))
    lacking = tuple(f"{op}_" for op in OPERANDS if op not in have)
    return {key: choices for key, choices in leaves.items() if not key.startswith(lacking)}


def _check_quantizers(seed: Mapping[str, SeedEntry], table: str) -> None:
    from netcarve.transforms.quantize.quantizers import QUANTIZERS

    for key, entry in seed.items():
        for choice in entry.config.get("name", []):
            if choice is not None and choice not in QUANTIZERS:
                raise ConfigError(f"{table}.seed.{key}.config.name: {QUANTIZERS.unknown_message(str(choice))}")


def quantize_pass_space(
    by: str,
    seed: Mapping[str, SeedEntry],
    graph: Graph,
    prefix: str,
    table: str,
    pass_config: Mapping[str, list[Any]] | None = None,
) -> PassSpace:
    """The quantize pass's space: per-target entries from ``seed``, and the pass's own keys (``beta*``, the
    weight of EBOPs when a candidate has learned quantizers) from ``pass_config``."""
    own = own_space(pass_config or {}, QuantizePassConfig, BETA_KEYS, prefix, table)
    targets, default_kinds = quantize_targets(graph)
    for key, entry in seed.items():
        check_leaves(entry, QuantLayerConfig, table, key)
    _check_quantizers(seed, table)
    used = used_seeds(seed, by, graph, targets, table)
    default_leaves: dict[str, list[Any]] = dict(seed["default"].config) if "default" in seed else {"name": [None]}
    leaves = {key: dict(seed[key].config) for key in used}
    if is_fixed(default_leaves):
        default = entry_space("default", default_leaves, prefix)
    else:
        default = EntrySpace("default", {"name": None})
        kind_of = {n: graph.meta(n).kind for n in targets.nodes}
        for target in targets.nodes if by == "name" else targets.kinds:
            kind = kind_of[target] if by == "name" else target
            if target not in leaves and kind in default_kinds:
                nodes = [target] if by == "name" else [n for n in targets.nodes if kind_of[n] == kind]
                leaves[target] = _own_leaves(default_leaves, graph, nodes)
    order = targets.nodes if by == "name" else targets.kinds
    entries = tuple(entry_space(t, leaves[t], prefix) for t in order if t in leaves)
    return PassSpace("quantize", by, default, entries, clean=_clean, own=own, finish=_beta_only_if_learned)
