"""User models: ``package.module:callable`` or ``path/to/file.py:callable``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

import torch
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
        if path.is_dir():
            raise ModelError(f"user model file {target!r} is a directory, not a file")
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
            raise ModelError(f"importing {target!r} failed: {_one_line(exc)}") from exc
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ModelError(f"cannot import module {target!r}: {exc}") from exc
    if not hasattr(module, attr):
        raise ModelError(f"{target!r} has no attribute {attr!r}")
    return getattr(module, attr)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _call(spec: str, factory: Callable[..., object], info: DatasetInfo) -> object:
    """Call the factory with ``in_features=, num_classes=`` (if it takes both), ``info`` (if it takes
    anything else) or nothing; a signature that does not fit, or an exception inside, is a ModelError."""
    try:
        signature: inspect.Signature | None = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    names = list(signature.parameters) if signature is not None else []
    args: tuple[object, ...] = ()
    kwargs: dict[str, object] = {}
    if "in_features" in names and "num_classes" in names:
        kwargs, how = {"in_features": info.in_features, "num_classes": info.num_classes}, "in_features, num_classes"
    elif names:
        args, how = (info,), "a DatasetInfo"
    else:
        how = "no arguments"
    if signature is not None:
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ModelError(
                f"user model {spec!r} cannot be called with {how}: {exc}; the callable must take "
                "in_features and num_classes, or one DatasetInfo, or nothing, and return an nn.Module"
            ) from exc
    try:
        return factory(*args, **kwargs)
    except Exception as exc:
        raise ModelError(f"user model {spec!r} raised {_one_line(exc)}") from exc


def check_output_size(
    spec: str, model: nn.Module, info: DatasetInfo, input_shape: tuple[int, ...] | None = None
) -> None:
    """One forward pass on a zero batch (2, in_features) — (2, *input_shape) when one sample's shape is given
    (``netcarve analyze --input-shape``) —, in eval mode and without gradients: the output must
    be (2, num_classes). The modules' train/eval flags are restored; nothing else changes (no BN update)."""
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    sample = tuple(input_shape) if input_shape is not None else (info.in_features,)
    x = torch.zeros(2, *sample, dtype=param.dtype if param is not None else torch.float32)
    if param is not None:
        x = x.to(param.device)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise ModelError(
            f"user model {spec!r} fails on a zero batch of shape {(2, *sample)} "
            f"(dataset {info.name!r} has {info.in_features} features): {_one_line(exc)}"
        ) from exc
    finally:
        for module, training in modes:
            module.training = training
    if not isinstance(out, torch.Tensor):
        raise ModelError(
            f"user model {spec!r} returns a {type(out).__name__} from its forward pass, expected a tensor of "
            f"shape (batch, {info.num_classes})"
        )
    if tuple(out.shape) != (2, info.num_classes):
        size = out.shape[-1] if out.dim() == 2 else tuple(out.shape[1:])
        raise ModelError(
            f"user model {spec!r} has output size {size}, but dataset {info.name!r} has {info.num_classes} "
            f"classes (a batch of shape {(2, *sample)} gave an output of shape {tuple(out.shape)})"
        )


def build_user_model(spec: str, info: DatasetInfo, input_shape: tuple[int, ...] | None = None) -> nn.Module:
    """Call the user's callable with ``info`` (or ``in_features, num_classes``, or nothing).

    The result must be an ``nn.Module`` whose output has one logit per class of the dataset; anything else
    (the callable raising, a wrong signature, a wrong return type or output size) is a ModelError naming
    ``spec``.
    """
    factory = _load_callable(spec)
    if isinstance(factory, nn.Module):
        model = factory
    elif not callable(factory):
        raise ModelError(f"{spec!r} is neither an nn.Module nor a callable (its type is {type(factory).__name__})")
    else:
        model = _call(spec, factory, info)  # type: ignore[assignment]
    if not isinstance(model, nn.Module):
        raise ModelError(f"user model {spec!r} returned {type(model).__name__}, expected a torch.nn.Module")
    check_output_size(spec, model, info, input_shape)
    return model
