"""Seeds (MASE's ``[search.search_space.seed.<node-or-type>.config]``) checked against the graph.

A seed key is ``default``, an fx node name or an op type. Under ``by = "name"`` node seeds are used and
op-type seeds are unused (a warning: MASE's example ships a ``linear`` seed with ``by = "name"``); under
``by = "type"`` the reverse. A key naming neither a node nor an op type is an error listing both. A used
seed must name a node (or type) the pass can change, and every leaf must be a key of the pass's layer
config with valid choices.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from netcarve.config.search import SeedEntry
from netcarve.errors import ConfigError
from netcarve.ir.graph import Graph
from netcarve.ir.opspecs import kinds
from netcarve.registry import did_you_mean
from netcarve.search.spaces.base import EntrySpace, Param

log = logging.getLogger(__name__)

#: every op type netcarve knows (a seed may name one that is not in this graph: it is then unused)


@dataclass(frozen=True)
class Targets:
    """What a pass can change in this graph: node names (by name) and op types (by type), in graph order."""

    nodes: tuple[str, ...]
    kinds: tuple[str, ...]
    what: str  # e.g. "quantizable", "width-capable": for messages


def _hint(key: str, candidates: Collection[str]) -> str:
    return did_you_mean(key, candidates, n=2)


def used_seeds(seed: Mapping[str, SeedEntry], by: str, graph: Graph, targets: Targets, table: str) -> list[str]:
    """The seed keys (besides ``default``) that apply under ``by``, in config order; warns on unused ones."""
    nodes = [n.name for n in graph.compute_nodes()]
    graph_kinds = sorted(graph.kinds())
    used: list[str] = []
    for key in seed:
        if key == "default":
            continue
        is_node, is_kind = key in nodes, key in kinds()
        if not (is_node or is_kind):
            raise ConfigError(
                f"{table}.seed.{key}: {key!r} names neither a node nor an op type of this graph"
                f"{_hint(key, nodes + graph_kinds)} (nodes: {', '.join(nodes)}; types: {', '.join(graph_kinds)})"
            )
        if by == "name" and is_node:
            _require(key, key in targets.nodes, targets.nodes, table, f"node {key!r} ({graph.meta(key).kind})", targets)
            used.append(key)
        elif by == "type" and is_kind:
            _require(
                key, key in targets.kinds or key not in graph_kinds, targets.kinds, table, f"op type {key!r}", targets
            )
            if key in graph_kinds:
                used.append(key)
            else:
                log.warning("%s.seed.%s: no node of type %r in this graph; the seed is unused", table, key, key)
        else:
            what = "an op type" if is_kind else "a node"
            log.warning("%s.seed.%s: %r is %s, unused with by = %r", table, key, key, what, by)
    return used


def _require(key: str, ok: bool, valid: Collection[str], table: str, what: str, targets: Targets) -> None:
    if not ok:
        raise ConfigError(
            f"{table}.seed.{key}: {what} cannot be changed by this pass; {targets.what}: {', '.join(valid) or '(none)'}"
        )


def check_leaves(seed: SeedEntry, model: type[BaseModel], table: str, key: str) -> None:
    """Every leaf is a field of the layer config ``model`` and each of its choices validates."""
    fields = list(model.model_fields)
    for leaf, choices in seed.config.items():
        where = f"{table}.seed.{key}.config.{leaf}"
        if leaf not in fields:
            raise ConfigError(f"unknown key {where!r}{_hint(leaf, fields)} (valid: {', '.join(fields)})")
        for choice in choices:
            try:
                model.model_validate({leaf: choice})
            except ValidationError as exc:
                raise ConfigError(f"invalid choice {choice!r} in {where!r}: {exc.errors()[0]['msg']}") from exc
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{where!r} lists a choice twice: {list(choices)}")


#: the name of a pass's own keys in the space (a parameter ``<prefix>pass/<key>``; no node can be named so)
OWN = "pass"


def own_space(
    choices: Mapping[str, list[Any]], model: type[BaseModel], allowed: Collection[str], prefix: str, table: str
) -> EntrySpace | None:
    """The pass's own searched keys (``[<table>.pass_config]``: ``key = [choices]``), each one of ``allowed``
    and each choice valid for that field of ``model`` (combinations are checked per candidate, by the pass:
    an invalid one is an invalid configuration)."""
    if not choices:
        return None
    for key, values in choices.items():
        where = f"{table}.pass_config.{key}"
        if key not in allowed:
            valid = ", ".join(allowed) or "(none: this pass has no searchable keys of its own)"
            raise ConfigError(f"unknown key {where!r}{_hint(key, list(allowed))} (valid: {valid})")
        info = model.model_fields[key]
        form: Any = Annotated[info.annotation, info]
        adapter: TypeAdapter[Any] = TypeAdapter(form)
        for value in values:
            try:
                adapter.validate_python(value, strict=True)
            except ValidationError as exc:
                raise ConfigError(f"invalid choice {value!r} in {where!r}: {exc.errors()[0]['msg']}") from exc
        if any(a == b for i, a in enumerate(values) for b in values[i + 1 :]):  # 0 and 0.0 too
            raise ConfigError(f"{where!r} lists a choice twice: {list(values)}")
    return entry_space(OWN, choices, prefix)


def entry_space(key: str, leaves: Mapping[str, list[Any]], prefix: str, skip: Collection[str] = ()) -> EntrySpace:
    """Single-choice leaves are fixed; the others become ``Param``s named ``<prefix><key>/<leaf>``."""
    fixed: dict[str, Any] = {}
    searched: list[tuple[str, Param]] = []
    for leaf, choices in leaves.items():
        if leaf in skip:
            continue
        if len(choices) == 1:
            fixed[leaf] = choices[0]
        else:
            searched.append((leaf, Param(f"{prefix}{key}/{leaf}", tuple(choices))))
    return EntrySpace(key, fixed, tuple(searched))


def is_fixed(leaves: Mapping[str, list[Any]]) -> bool:
    return all(len(choices) == 1 for choices in leaves.values())
