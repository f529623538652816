"""The function side of the pass registry: ``@register_pass`` puts a pass function into its one entry.

Every pass is ``fn(graph, config) -> PassResult[Info]``. The entries (name, config model, aliases, function,
result type, doc) live in :data:`netcarve.config.pass_registry.PASSES`, which the config side reads without
torch; see that module for how netcarve's own passes are declared there and bound here.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

from netcarve.config.pass_registry import PASSES, PassEntry, bind_pass, load_pass

__all__ = ["PASSES", "PassEntry", "PassResult", "load_pass", "register_pass"]

InfoT = TypeVar("InfoT")
F = TypeVar("F", bound=Callable[..., Any])


class PassResult(NamedTuple, Generic[InfoT]):
    graph: Any
    info: InfoT


def result_type_of(fn: Callable[..., Any]) -> type[Any] | None:
    """``Info`` of a function annotated ``-> PassResult[Info]``; None when not annotated so (or unresolvable)."""
    try:
        hint = typing.get_type_hints(fn).get("return")
    except (NameError, TypeError):  # a forward reference the function's module cannot resolve
        return None
    args = typing.get_args(hint)
    if typing.get_origin(hint) is PassResult and len(args) == 1 and isinstance(args[0], type):
        return args[0]
    return None


def register_pass(
    name: str,
    config: type[Any] | None = None,
    *,
    aliases: tuple[str, ...] = (),
    kind: str = "transform",
    result: type[Any] | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as pass ``name`` with its config model, aliases and result type.

    ``result`` defaults to ``Info`` of the ``-> PassResult[Info]`` annotation. A pass declared on the config
    side (netcarve's own) takes its config model and aliases from the declaration: ``@register_pass(name)``.
    """

    def decorator(fn: F) -> F:
        found = result if result is not None else result_type_of(fn)
        bind_pass(name, fn, config_model=config, aliases=aliases, result_type=found, kind=kind)
        return fn

    return decorator
