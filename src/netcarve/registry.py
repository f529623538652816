"""One generic name → object registry, used for models, datasets, passes, quantizers, metrics, samplers."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from netcarve.errors import UnknownNameError

T = TypeVar("T")


def _identity(name: str) -> str:
    return name


def loose_key(name: str) -> str:
    """Normalise a name for matching that ignores case, ``-`` and ``_`` (``Brute-Force`` → ``bruteforce``)."""
    return name.lower().replace("-", "").replace("_", "")


def close_matches(word: str, choices: Iterable[str], n: int = 1, cutoff: float = 0.5) -> list[str]:
    """The ``n`` choices closest to ``word`` (difflib's ratio ≥ ``cutoff``), best first."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)


def did_you_mean(word: str, choices: Iterable[str], n: int = 1, cutoff: float = 0.5) -> str:
    """``"; did you mean 'x'?"`` (or ``'x', 'y'``) for a mistyped name, or ``""`` when nothing is close: the one
    suggestion rule of every "unknown …" message."""
    close = close_matches(word, choices, n, cutoff)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    description: str
    aliases: tuple[str, ...]
    #: recommended settings that come with this entry (a dataset's training defaults: config key → value)
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


class Registry(Generic[T]):
    """A registry of named objects with aliases and "did you mean" suggestions on a typo."""

    def __init__(self, kind: str, normalize: Callable[[str], str] = _identity) -> None:
        self.kind = kind
        self._normalize = normalize
        self._entries: dict[str, Entry[T]] = {}
        self._lookup: dict[str, str] = {}

    def add(
        self,
        name: str,
        obj: T,
        *,
        aliases: tuple[str, ...] = (),
        description: str = "",
        defaults: Mapping[str, Any] | None = None,
    ) -> T:
        for key in (name, *aliases):
            norm = self._normalize(key)
            if norm in self._lookup:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._lookup[norm] = name
        self._entries[name] = Entry(name, obj, description, aliases, MappingProxyType(dict(defaults or {})))
        return obj

    def register(
        self,
        name: str,
        *,
        aliases: tuple[str, ...] = (),
        description: str = "",
        defaults: Mapping[str, Any] | None = None,
    ) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            doc = description or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            return self.add(name, obj, aliases=aliases, description=doc, defaults=defaults)

        return decorator

    def replace(self, name: str, obj: T, *, description: str | None = None) -> T:
        """Swap the object of the registered ``name`` (or alias), keeping its aliases and defaults."""
        old = self.entry(name)
        text = old.description if description is None else description
        self._entries[old.name] = Entry(old.name, obj, text, old.aliases, old.defaults)
        return obj

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; raises :class:`UnknownNameError`."""
        found = self._lookup.get(self._normalize(name))
        if found is None:
            raise UnknownNameError(self.unknown_message(name))
        return found

    def unknown_message(self, name: str) -> str:
        hint = did_you_mean(name, sorted({*self._entries, *self._aliases()}), n=3)
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.names())})"

    def _aliases(self) -> list[str]:
        return [a for e in self._entries.values() for a in e.aliases]

    def get(self, name: str) -> T:
        return self._entries[self.canonical(name)].obj

    def entry(self, name: str) -> Entry[T]:
        return self._entries[self.canonical(name)]

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._normalize(name) in self._lookup

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
