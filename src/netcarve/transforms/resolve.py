"""The one entry resolution of the transform passes: default < type < name (README: Transform).

A pass table (``[passes.quantize]``, ``[passes.width]``) has a ``default`` entry and entries keyed by op
type (``linear``) or fx node name (``seq_blocks_2``). A node gets the entry naming it, else the entry of
its op type, else ``default``; the most specific entry wins as a whole (fields are not merged).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Generic, Literal, TypeVar

C = TypeVar("C")

Source = Literal["name", "type", "default"]


@dataclass(frozen=True)
class LayerEntries(Generic[C]):
    """A pass table's layer entries, sorted into ``by_name`` and ``by_type``."""

    default: C
    by_type: Mapping[str, C] = field(default_factory=lambda: MappingProxyType({}))
    by_name: Mapping[str, C] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def keyed_by(cls, by: Literal["type", "name"], default: C, entries: Mapping[str, C]) -> LayerEntries[C]:
        """Entries whose keys are all node names (``by = "name"``) or all op types (``by = "type"``)."""
        table = MappingProxyType(dict(entries))
        return cls(default, by_name=table) if by == "name" else cls(default, by_type=table)


@dataclass(frozen=True)
class Resolved(Generic[C]):
    """The entry a node gets and where it came from."""

    config: C
    source: Source

    @property
    def explicit(self) -> bool:
        """True when an entry names the node or its type (not the ``default`` template)."""
        return self.source != "default"


def resolve(entries: LayerEntries[C], node_name: str, kind: str) -> Resolved[C]:
    """The entry of node ``node_name`` (op ``kind``): default < type < name."""
    if node_name in entries.by_name:
        return Resolved(entries.by_name[node_name], "name")
    if kind in entries.by_type:
        return Resolved(entries.by_type[kind], "type")
    return Resolved(entries.default, "default")
