"""User models: ``package.module:callable`` or ``path/to/file.py:callable``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

from torch import nn

from netcarve.data.base import DatasetInfo
from netcarve.errors import ModelError


def is_user_model(spec: str) -> bool:
    return ":" in spec


def _load_callable(spec: str) -> object:
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ModelError(f"user model {spec!r} must look like 'package.module:callable' or 'file.py:callable'")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ModelError(f"user model file {target!r} does not exist")
        mod_name = f"netcarve_user_{abs(hash(path.resolve()))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ModelError(f"cannot import {target!r}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise ModelError(f"importing {target!r} failed: {type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ModelError(f"cannot import module {target!r}: {exc}") from None
    if not hasattr(module, attr):
        raise ModelError(f"{target!r} has no attribute {attr!r}")
    return getattr(module, attr)


def build_user_model(spec: str, info: DatasetInfo) -> nn.Module:
    """Call the user's callable with ``info`` (or ``in_features, num_classes``, or nothing)."""
    factory = _load_callable(spec)
    if isinstance(factory, nn.Module):
        return factory
    if not callable(factory):
        raise ModelError(f"{spec!r} is neither an nn.Module nor a callable")
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    names = list(params)
    if "in_features" in names and "num_classes" in names:
        model = factory(in_features=info.in_features, num_classes=info.num_classes)
    elif len(names) >= 1:
        model = factory(info)
    else:
        model = factory()
    if not isinstance(model, nn.Module):
        raise ModelError(f"{spec!r} returned {type(model).__name__}, not an nn.Module")
    return model
