"""Pass registry: ``@register_pass("quantize", kind="transform")``; every pass returns a PassResult."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from netcarve.registry import Registry

InfoT = TypeVar("InfoT")


class PassResult(NamedTuple, Generic[InfoT]):
    graph: Any
    info: InfoT


@dataclass(frozen=True)
class PassEntry:
    name: str
    kind: str  # "transform" | "analysis"
    fn: Callable[..., PassResult[Any]]


PASSES: Registry[PassEntry] = Registry("pass")


def register_pass(name: str, kind: str, aliases: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Any]:
    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = (fn.__doc__ or "").strip().split("\n")[0]
        PASSES.add(name, PassEntry(name, kind, fn), aliases=aliases, description=doc)
        return fn

    return decorator
