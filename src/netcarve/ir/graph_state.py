"""Graph state a checkpoint carries beside the transform list and the state dict: one entry per kind,
registered by the module that owns it (per-element formats: :mod:`netcarve.transforms.quantize.formats`), so
that ``train/checkpoint.py`` saves and restores it without importing ``transforms/`` (which sits above it).

An entry is registered when its module is imported; a graph that holds such state was made through that
module, and a checkpoint that stores it is loaded after its transform list was replayed (which imports it),
so the entry is there whenever it is needed. A checkpoint whose state has no entry is an error, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netcarve.ir.graph import Graph


@dataclass(frozen=True)
class StateEntry:
    #: the graph's state of this kind (empty or None: it has none)
    save: Callable[[Graph], Any]
    #: a new graph with the saved state set (raises NetcarveError when it does not fit)
    restore: Callable[[Graph, Any], Graph]


#: the state kinds netcarve's own modules register
ELEMENT_FORMATS = "element_formats"

_ENTRIES: dict[str, StateEntry] = {}


def register_state(name: str, save: Callable[[Graph], Any], restore: Callable[[Graph, Any], Graph]) -> None:
    _ENTRIES[name] = StateEntry(save, restore)


def saved_state(graph: Graph, name: str) -> Any:
    """``graph``'s state ``name`` (None when no module registered it: then no graph can hold it)."""
    entry = _ENTRIES.get(name)
    return None if entry is None else entry.save(graph)


def restored_state(graph: Graph, name: str, state: Any) -> Graph:
    """``graph`` with the saved ``state`` of kind ``name`` set; KeyError when no module registered it."""
    return _ENTRIES[name].restore(graph, state)
