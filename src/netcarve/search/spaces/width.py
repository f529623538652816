"""``graph/width/channel_multiplier`` (alias ``graph/quantize/channel_size_modifier``): Lab 4's width search.

README: Transform: the sampled multiplier of an ``output_only``/``both`` entry sets the layer's outputs, and inputs
always follow their producer, so an ``input_only`` entry needs no multiplier of its own (its
``channel_multiplier`` choices are not searched) and ``parent_block_name`` is only checked (a warning when
it names a node that is not upstream). A ``default`` seed with choices is sampled once (``default/…``) and
applies to every layer without a seed; the pass keeps the model's output width fixed by itself.

Resized layers are freshly initialised (the pass's ``init = "random"``, seeded), as MASE's Lab 4 did:
every candidate is retrained, and with net2net's copied units the copies would get identical gradients and
stay copies, so a wider candidate could never use its extra width. Layers whose width does not change keep
the base model's weights.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from netcarve.config.passes import WidthLayerConfig
from netcarve.config.search import SeedEntry
from netcarve.ir.graph import Graph
from netcarve.search.spaces.base import PassSpace
from netcarve.search.spaces.seeds import Targets, check_leaves, entry_space, used_seeds

log = logging.getLogger(__name__)

#: width modes whose entry's channel_multiplier sets the outputs
OUTPUT_MODES = ("output_only", "both")
#: initialisation of resized layers in a search (see the module docstring)
SEARCH_INIT = "random"


def width_targets(graph: Graph) -> Targets:
    from netcarve.transforms.width.plan import width_nodes

    nodes = [n.name for n in width_nodes(graph)]
    kinds = list(dict.fromkeys(graph.meta(n).kind for n in nodes))
    return Targets(tuple(nodes), tuple(kinds), "width-capable layers")


def _clean(config: dict[str, Any]) -> dict[str, Any]:
    """Leaves that do not apply to the sampled mode are dropped (inputs follow their producer)."""
    mode = config.get("name")
    if mode is None:
        return {"name": None}
    out = {k: v for k, v in config.items() if k != "parent_block_name"}
    if mode not in OUTPUT_MODES:
        out.pop("channel_multiplier", None)
    return out


def _check_parents(graph: Graph, key: str, parents: list[Any], table: str) -> None:
    from netcarve.transforms.width.plan import ancestors

    upstream = ancestors(graph.node(key))
    for parent in parents:
        if parent is not None and parent not in upstream:
            log.warning(
                "%s.seed.%s: parent_block_name %r is not upstream of %r (ignored: inputs follow their producer)",
                table, key, parent, key,
            )  # fmt: skip


def _skipped(leaves: Mapping[str, list[Any]]) -> set[str]:
    skip = {"parent_block_name"}
    if not any(mode in OUTPUT_MODES for mode in leaves.get("name", [None])):
        skip.add("channel_multiplier")
    return skip


def width_pass_space(by: str, seed: Mapping[str, SeedEntry], graph: Graph, prefix: str, table: str) -> PassSpace:
    targets = width_targets(graph)
    for key, entry in seed.items():
        check_leaves(entry, WidthLayerConfig, table, key)
    used = used_seeds(seed, by, graph, targets, table)
    if by == "name":
        for key in used:
            _check_parents(graph, key, seed[key].config.get("parent_block_name", []), table)
    default_leaves: dict[str, list[Any]] = dict(seed["default"].config) if "default" in seed else {"name": [None]}
    default = entry_space("default", default_leaves, prefix, _skipped(default_leaves))
    order = targets.nodes if by == "name" else targets.kinds
    entries = tuple(entry_space(k, seed[k].config, prefix, _skipped(seed[k].config)) for k in order if k in used)
    return PassSpace("width", by, default, entries, extra={"init": SEARCH_INIT}, clean=_clean)
