"""Search-space registry: ``[search.search_space] name`` → a builder over the base graph (README: Search)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from netcarve.config.search import SearchSpaceConfig, SubSpaceConfig
from netcarve.errors import ConfigError, UnknownNameError
from netcarve.ir.graph import Graph
from netcarve.registry import Registry
from netcarve.search.spaces.base import EntrySpace, Param, PassSpace, SearchSpace, Transforms, transforms_key
from netcarve.search.spaces.quantize import quantize_pass_space
from netcarve.search.spaces.width import width_pass_space

__all__ = [
    "SEARCH_SPACES",
    "EntrySpace",
    "Param",
    "PassSpace",
    "SearchSpace",
    "Transforms",
    "build_space",
    "transforms_key",
]

log = logging.getLogger(__name__)
TABLE = "search.search_space"

SpaceBuilder = Callable[[SearchSpaceConfig, Graph], SearchSpace]
SEARCH_SPACES: Registry[SpaceBuilder] = Registry("search space")


def _single(config: SearchSpaceConfig) -> None:
    for sub in ("quantize", "width"):
        if getattr(config, sub) is not None:
            raise ConfigError(f"{TABLE}.{sub}: sub-spaces belong to name = 'graph/joint', not {config.name!r}")


def _no_pass_config(choices: dict[str, list[object]], table: str) -> None:
    if choices:
        key = next(iter(choices))
        raise ConfigError(f"{table}.pass_config.{key}: the width pass has no searchable keys of its own")


@SEARCH_SPACES.register("graph/quantize/mixed_precision_ptq", description="per-layer quantization choices")
def mixed_precision_ptq(config: SearchSpaceConfig, graph: Graph) -> SearchSpace:
    _single(config)
    ps = quantize_pass_space(config.setup.by, config.seed, graph, "", TABLE, config.pass_config)
    return SearchSpace(config.name, (ps,), changes_width=False)


@SEARCH_SPACES.register(
    "graph/width/channel_multiplier",
    aliases=("graph/quantize/channel_size_modifier",),
    description="per-layer channel multipliers (Lab 4); every candidate is retrained",
)
def channel_multiplier(config: SearchSpaceConfig, graph: Graph) -> SearchSpace:
    _single(config)
    _no_pass_config(config.pass_config, TABLE)
    ps = width_pass_space(config.setup.by, config.seed, graph, "", TABLE)
    return SearchSpace(config.name, (ps,), changes_width=True)


def _sub(config: SearchSpaceConfig, name: str) -> SubSpaceConfig:
    sub = getattr(config, name)
    if sub is None:
        raise ConfigError(f"graph/joint needs [{TABLE}.{name}] with its own setup and seed tables")
    return sub


@SEARCH_SPACES.register("graph/joint", description="width and quantization together (width applied first)")
def joint(config: SearchSpaceConfig, graph: Graph) -> SearchSpace:
    if config.seed:
        raise ConfigError(
            f"{TABLE}.seed: graph/joint takes its seeds under [{TABLE}.quantize.seed.*] and [{TABLE}.width.seed.*]"
        )
    width, quant = _sub(config, "width"), _sub(config, "quantize")
    if config.pass_config:
        raise ConfigError(
            f"{TABLE}.pass_config: graph/joint takes a pass's own keys under [{TABLE}.quantize.pass_config]"
        )
    _no_pass_config(width.pass_config, f"{TABLE}.width")
    passes = (
        width_pass_space(width.setup.by, width.seed, graph, "width/", f"{TABLE}.width"),
        quantize_pass_space(quant.setup.by, quant.seed, graph, "quantize/", f"{TABLE}.quantize", quant.pass_config),
    )
    return SearchSpace(config.name, passes, changes_width=True)


def build_space(config: SearchSpaceConfig, graph: Graph) -> SearchSpace:
    """The space named by ``config.name`` over ``graph``; ConfigError on an unknown name or a bad seed."""
    try:
        builder = SEARCH_SPACES.get(config.name)
    except UnknownNameError as exc:
        raise ConfigError(f"{TABLE}.name: {exc}") from exc
    space = replace(builder(config, graph), name=SEARCH_SPACES.canonical(config.name))
    names = [p.name for p in space.params]
    if len(set(names)) != len(names):
        raise ConfigError(f"{TABLE}: parameter names collide: {names}")
    log.debug("search space %s: %d searched parameters, %d configurations", space.name, len(names), space.size)
    return space
