"""Re-apply a ModelSpec's transform list, so a transformed checkpoint rebuilds its graph from plain dicts."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from netcarve.config.passes import PASS_ALIASES, PASS_CONFIGS, coerce_pass_config
from netcarve.errors import PassError
from netcarve.ir.graph import Graph
from netcarve.ir.passes import PASSES

#: modules whose import registers netcarve's own transform passes
BUILTIN_PASS_MODULES = ("netcarve.transforms.quantize", "netcarve.transforms.width")


def load_builtin_passes() -> None:
    """Import the built-in pass modules (each registers its passes in ``PASSES``)."""
    for name in BUILTIN_PASS_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a pass module that is not part of this build
            if exc.name != name:
                raise


def pass_config(name: str, config: Mapping[str, Any] | BaseModel | None) -> Any:
    """Validate ``config`` with the config model of pass ``name`` (a dict passes through if it has none)."""
    model = PASS_CONFIGS.get(name)
    if model is None:
        return config
    return coerce_pass_config(model, config, f"passes.{name}")  # type: ignore[arg-type]


def check_transform(name: str, config: Mapping[str, Any] | BaseModel | None) -> tuple[str, Any]:
    """The canonical pass name and validated config of one stored transform, without applying it.

    Raises UnknownNameError (no such pass), PassError (not a transform pass) or ConfigError (the pass's
    config model refuses ``config``).
    """
    load_builtin_passes()
    canonical = PASSES.canonical(PASS_ALIASES.get(name, name))
    entry = PASSES.get(canonical)
    if entry.kind != "transform":
        raise PassError(f"pass {name!r} is an {entry.kind} pass, not a transform")
    return canonical, pass_config(canonical, config)


def apply_transforms(graph: Graph, transforms: Iterable[tuple[str, Mapping[str, Any] | BaseModel | None]]) -> Graph:
    """Run each ``(pass name, config)`` through the ``PASSES`` registry, in order; returns the new graph.

    Configs may be plain (MASE-layout) dicts, as stored in a checkpoint's spec, or validated config
    models. Each pass appends itself to the graph's spec, so replaying a spec's transforms on the bare
    base model reproduces that spec.
    """
    for name, config in transforms:
        canonical, validated = check_transform(name, config)
        graph = PASSES.get(canonical).fn(graph, validated).graph
    return graph
