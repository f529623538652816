"""The one pass registry: ``PASSES`` holds one :class:`PassEntry` per pass (name, config model, aliases,
function, typed result, doc), as torch.fx's pass infrastructure keeps a pass and its settings together.

This module imports no torch, so the config side (``[passes.*]`` validation, ``netcarve --help``) reads
the entries without loading any pass code. A pass gets its entry in one of two ways:

- ``@register_pass(name, config=Model, aliases=(…))`` (:mod:`netcarve.ir.passes`) on the function adds
  the whole entry at once: a user's pass, or the ``analyze`` pass.
- netcarve's own transforms are *declared* below (name, config model, aliases and the module that holds
  the function), so a config names them before torch is imported; that module's ``@register_pass(name)``
  then binds the function and its result type into the same entry. :func:`load_pass` imports the module
  the first time the function is needed.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from netcarve.config.passes import (
    FoldBatchNormPassConfig,
    FreezeLearnedPassConfig,
    QuantizePassConfig,
    WidthPassConfig,
    coerce_pass_config,
)
from netcarve.errors import ConfigError, PassError
from netcarve.registry import Registry


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n")[0]


@dataclass(frozen=True)
class PassEntry:
    """One pass: ``fn(graph, config) -> PassResult[result_type]``; ``fn`` is None until ``module`` is imported."""

    name: str
    config_model: type[Any] | None = None
    aliases: tuple[str, ...] = ()
    fn: Callable[..., Any] | None = None
    result_type: type[Any] | None = None
    doc: str = ""
    kind: str = "transform"  # "transform" (returns a new graph) | "analysis" (returns the graph unchanged)
    #: the module whose import registers ``fn`` (a declared pass), or None
    module: str | None = None

    def validate(self, config: Any) -> Any:
        """``config`` validated by the config model: a model instance, a MASE-layout dict ("NA" allowed) or
        None (the defaults); passed through when the pass has no model. Raises ConfigError."""
        model = self.config_model
        if model is None or (config is not None and isinstance(config, model)):
            return config
        if issubclass(model, BaseModel):
            return coerce_pass_config(model, config, f"passes.{self.name}")
        if config is None:
            return model()
        if not isinstance(config, Mapping):
            raise ConfigError(f"passes.{self.name} must be a table or a {model.__name__}, got {type(config).__name__}")
        try:
            return model(**config)
        except TypeError as exc:
            raise ConfigError(f"passes.{self.name}: {exc}") from exc

    def run(self, graph: Any, config: Any = None) -> Any:
        """``fn(graph, validated config)``: the pass's PassResult (load the entry with :func:`load_pass`)."""
        if self.fn is None:
            raise PassError(f"pass {self.name!r} is not loaded: its module {self.module} has not been imported")
        return self.fn(graph, self.validate(config))


PASSES: Registry[PassEntry] = Registry("pass")


def declare_pass(name: str, config_model: type[BaseModel], *, module: str, aliases: tuple[str, ...] = ()) -> PassEntry:
    """The entry of a pass whose function ``module`` registers (with ``@register_pass(name)``)."""
    entry = PassEntry(name, config_model, aliases, doc=_first_line(config_model.__doc__), module=module)
    return PASSES.add(name, entry, aliases=aliases, description=entry.doc)


def bind_pass(
    name: str,
    fn: Callable[..., Any],
    *,
    config_model: type[Any] | None = None,
    aliases: tuple[str, ...] = (),
    result_type: type[Any] | None = None,
    kind: str = "transform",
) -> PassEntry:
    """Register ``fn`` as pass ``name``: complete its declared entry, or add a new entry.

    A declared pass keeps its declared config model and aliases; giving others is a ValueError (one home
    per fact), and so is registering a second function under a name.
    """
    doc = _first_line(fn.__doc__)
    if name not in PASSES:
        entry = PassEntry(name, config_model, aliases, fn, result_type, doc, kind)
        return PASSES.add(name, entry, aliases=aliases, description=doc)
    old = PASSES.entry(name).obj
    if old.name != name:
        raise ValueError(f"pass {name!r} is an alias of {old.name!r}; register the function as {old.name!r}")
    same_fn = old.fn is not None and (old.fn.__module__, old.fn.__qualname__) == (fn.__module__, fn.__qualname__)
    if old.fn is not None and not same_fn:
        raise ValueError(f"pass {name!r} is already registered (by {old.fn.__module__}.{old.fn.__qualname__})")
    if config_model is not None and config_model is not old.config_model:
        raise ValueError(f"pass {name!r} is declared with config {old.config_model!r}, not {config_model!r}")
    if not set(aliases) <= set(old.aliases) or kind != old.kind:
        raise ValueError(f"pass {name!r}: its aliases and kind are declared with it ({old.aliases}, {old.kind!r})")
    entry = dataclasses.replace(old, fn=fn, result_type=result_type, doc=doc or old.doc)
    return PASSES.replace(name, entry, description=entry.doc)


def load_pass(name: str) -> PassEntry:
    """The entry of pass ``name`` (or an alias) with its function, importing its module when needed.

    Raises UnknownNameError (no such pass) or PassError (its module registers no function).
    """
    entry = PASSES.get(name)
    if entry.fn is None and entry.module is not None:
        try:
            importlib.import_module(entry.module)
        except ModuleNotFoundError as exc:
            if exc.name != entry.module:
                raise
            raise PassError(f"pass {entry.name!r}: its module {entry.module} is not part of this build") from exc
        entry = PASSES.get(name)
    if entry.fn is None:
        raise PassError(f"pass {entry.name!r} has no function: {entry.module or 'nothing'} registers none")
    return entry


def transform_config_model(name: str) -> type[BaseModel] | None:
    """The config model of transform pass ``name`` (or an alias): a ``[passes.<name>]`` table; else None."""
    if name not in PASSES:
        return None
    entry = PASSES.get(name)
    model = entry.config_model
    if entry.kind != "transform" or not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    return model


def transform_pass_names() -> list[str]:
    """The passes a ``[passes.<name>]`` table may name (those with a config model)."""
    return [name for name in PASSES.names() if transform_config_model(name) is not None]


# netcarve's own transform passes: known here without torch; their modules register the functions
declare_pass("quantize", QuantizePassConfig, module="netcarve.transforms.quantize.pass_")
declare_pass(
    "width", WidthPassConfig, module="netcarve.transforms.width.pass_", aliases=("channel_multiplier", "redefine")
)
declare_pass("fold_batchnorm", FoldBatchNormPassConfig, module="netcarve.transforms.fold")
declare_pass("freeze_learned", FreezeLearnedPassConfig, module="netcarve.transforms.quantize.learned")
