"""Op classification: an fx node's target → its op kind name, read from the op registry (:mod:`.opspecs`).

Kind names are MASE's type names, used by ``by = "type"`` configs: linear, conv1d, conv2d, relu, …
The tables below are views derived from :data:`~netcarve.ir.opspecs.OPS` (the one home of these facts),
kept for the modules that want a plain mapping; they are computed on each call, so a kind registered
later (a test's ``hardtanh``) is seen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from netcarve.ir.opspecs import OPS, kinds, spec_of_function, spec_of_method, spec_of_module


def module_kinds() -> dict[type[nn.Module], str]:
    return {cls: OPS.get(k).kind for k in OPS for cls in OPS.get(k).modules}


def function_kinds() -> dict[Callable[..., Any], str]:
    return {fn: OPS.get(k).kind for k in OPS for fn in OPS.get(k).functions}


def method_kinds() -> dict[str, str]:
    return {m: OPS.get(k).kind for k in OPS for m in OPS.get(k).methods}


def known_kinds() -> frozenset[str]:
    """Every registered op kind."""
    return kinds()


def width_kinds() -> frozenset[str]:
    """Kinds whose node holds weights and can change width (channel behaviour ``producer``)."""
    return kinds(lambda s: s.changes_width)


# snapshots of the built-in registry, for importers that want constants
MODULE_KINDS = module_kinds()
FUNCTION_KINDS = function_kinds()
METHOD_KINDS = method_kinds()
#: kinds whose node holds weights and can change width
WIDTH_KINDS = width_kinds()


def module_kind(module: nn.Module) -> str:
    spec = spec_of_module(module)
    return "module" if spec is None else spec.kind


def function_kind(fn: object) -> str:
    spec = spec_of_function(fn)
    return "function" if spec is None else spec.kind


def method_kind(name: str) -> str:
    spec = spec_of_method(name)
    return "method" if spec is None else spec.kind
