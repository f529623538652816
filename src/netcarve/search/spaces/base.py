"""A search space: categorical parameters with readable names → the pass configs of one candidate.

A space is a sequence of :class:`PassSpace` (one per transform pass, applied in order). Each holds the
pass's ``by``, its fixed ``default`` entry and one :class:`EntrySpace` per node or op type, whose leaves
are either fixed (a single choice) or a :class:`Param` (several choices, suggested with
``suggest_categorical`` under the name ``<prefix><entry>/<leaf>``, e.g. ``seq_blocks_2/weight_width``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: a candidate: the transforms to apply to the base graph, as (pass name, MASE-layout config dict)
Transforms = tuple[tuple[str, dict[str, Any]], ...]
#: an entry config → the config the pass gets (drops leaves that do not apply to the sampled values)
EntryCleaner = Callable[[dict[str, Any]], dict[str, Any]]


class Suggester(Protocol):
    """What a space needs of an Optuna trial."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Param:
    """One searched leaf: its Optuna parameter name and its choices (in config order)."""

    name: str
    choices: tuple[Any, ...]


@dataclass(frozen=True)
class EntrySpace:
    """One pass-config entry (a node name, an op type or ``default``): fixed leaves and searched ones."""

    key: str
    fixed: Mapping[str, Any]
    searched: tuple[tuple[str, Param], ...] = ()

    def config(self, point: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.fixed, **{leaf: point[p.name] for leaf, p in self.searched}}


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    return config


@dataclass(frozen=True)
class PassSpace:
    """The part of a space that configures one transform pass."""

    pass_name: str
    by: str
    default: EntrySpace
    entries: tuple[EntrySpace, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)
    clean: EntryCleaner = _identity
    #: the pass's own keys (not per layer), fixed or searched (``pass_config``), e.g. the quantize pass's beta
    own: EntrySpace | None = None
    #: the whole pass config → the one the pass gets (drops own keys that act on nothing in this candidate)
    finish: EntryCleaner = _identity

    def _entries(self) -> tuple[EntrySpace, ...]:
        return (*((self.own,) if self.own is not None else ()), self.default, *self.entries)

    def params(self) -> Iterator[Param]:
        for entry in self._entries():
            for _, param in entry.searched:
                yield param

    def config(self, point: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"by": self.by, **self.extra}
        if self.own is not None:
            out.update(self.own.config(point))
        out["default"] = {"config": self.clean(self.default.config(point))}
        for entry in self.entries:
            out[entry.key] = {"config": self.clean(entry.config(point))}
        return self.finish(out)


@dataclass(frozen=True)
class SearchSpace:
    """A finite categorical space. ``params`` are in canonical order (brute force enumerates them so)."""

    name: str
    passes: tuple[PassSpace, ...]
    changes_width: bool = False

    @property
    def params(self) -> tuple[Param, ...]:
        return tuple(p for ps in self.passes for p in ps.params())

    @property
    def size(self) -> int:
        """The number of configurations (1 when nothing is searched)."""
        return math.prod(len(p.choices) for p in self.params)

    def suggest(self, trial: Suggester) -> dict[str, Any]:
        """Ask the trial for every searched leaf (fixed leaves are not suggested)."""
        return {p.name: trial.suggest_categorical(p.name, list(p.choices)) for p in self.params}

    def point(self, index: int) -> dict[str, Any]:
        """Configuration ``index`` in canonical order: mixed radix, the last parameter varies fastest."""
        if not 0 <= index < self.size:
            raise IndexError(f"configuration {index} is outside the space of {self.size}")
        out: dict[str, Any] = {}
        for param in reversed(self.params):
            index, digit = divmod(index, len(param.choices))
            out[param.name] = param.choices[digit]
        return {p.name: out[p.name] for p in self.params}

    def transforms(self, point: Mapping[str, Any]) -> Transforms:
        missing = [p.name for p in self.params if p.name not in point]
        if missing:
            raise KeyError(f"configuration lacks parameters: {', '.join(missing)}")
        return tuple((ps.pass_name, ps.config(point)) for ps in self.passes)

    def can_choose(self, leaf: str, value: Any) -> bool:
        """Whether some entry's ``leaf`` is, or may be chosen as, ``value`` (e.g. a ``learned`` quantizer)."""
        for ps in self.passes:
            for entry in ps._entries():
                if entry.fixed.get(leaf) == value:
                    return True
                if any(name == leaf and value in p.choices for name, p in entry.searched):
                    return True
        return False

    def describe(self) -> list[tuple[str, str]]:
        """(leaf, choices or fixed value) rows for printing, in canonical order."""
        rows: list[tuple[str, str]] = []
        for ps in self.passes:
            for entry in ps._entries():
                prefix = f"{ps.pass_name}: {entry.key}"
                rows += [(f"{prefix}/{leaf}", f"= {value!r}") for leaf, value in entry.fixed.items()]
                rows += [
                    (f"{prefix}/{leaf}", "{" + ", ".join(map(repr, p.choices)) + "}") for leaf, p in entry.searched
                ]
        return rows


def transforms_key(transforms: Transforms) -> str:
    """A canonical text of a candidate's transforms: equal keys ⇔ equal candidates."""
    return json.dumps([[name, cfg] for name, cfg in transforms], sort_keys=True, default=repr)
