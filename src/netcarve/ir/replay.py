"""Re-apply a ModelSpec's transform list through the pass registry, so a transformed checkpoint (or a search
candidate) rebuilds its graph from plain dicts. It lives in ``ir/`` beside ``passes.py``: checkpoints (``train/``)
replay transforms without importing ``transforms/``, whose modules the registry loads by name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from netcarve.config.pass_registry import PassEntry, load_pass
from netcarve.errors import PassError
from netcarve.ir.graph import Graph


def transform_entry(name: str) -> PassEntry:
    """The registered transform pass ``name`` (or an alias), its function loaded.

    Raises UnknownNameError (no such pass) or PassError (not a transform pass, or no function).
    """
    entry = load_pass(name)
    if entry.kind != "transform":
        raise PassError(f"pass {name!r} is an {entry.kind} pass, not a transform")
    return entry


def check_transform(name: str, config: Mapping[str, Any] | BaseModel | None) -> tuple[str, Any]:
    """The canonical pass name and validated config of one stored transform, without applying it.

    Raises UnknownNameError (no such pass), PassError (not a transform pass) or ConfigError (the pass's
    config model refuses ``config``).
    """
    entry = transform_entry(name)
    return entry.name, entry.validate(config)


Transforms = Iterable[tuple[str, Mapping[str, Any] | BaseModel | None]]


def run_transforms(graph: Graph, transforms: Transforms) -> tuple[Graph, tuple[tuple[str, Any], ...]]:
    """Run each ``(pass name, config)`` through the pass registry, in order: the new graph and each pass's
    ``(canonical name, info)`` (its typed result, e.g. :class:`~netcarve.transforms.quantize.QuantizeInfo`).

    Configs may be plain (MASE-layout) dicts, as stored in a checkpoint's spec, or validated config
    models. Each pass appends itself to the graph's spec, so replaying a spec's transforms on the bare
    base model reproduces that spec.
    """
    infos: list[tuple[str, Any]] = []
    for name, config in transforms:
        entry = transform_entry(name)
        result = entry.run(graph, config)
        graph = result.graph
        infos.append((entry.name, result.info))
    return graph, tuple(infos)


def apply_transforms(graph: Graph, transforms: Transforms) -> Graph:
    """:func:`run_transforms`, the new graph only."""
    return run_transforms(graph, transforms)[0]
