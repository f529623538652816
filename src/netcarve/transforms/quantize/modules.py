"""Quantized modules: each subclasses its float module, so code that handles ``nn.Linear`` still works.

A quantized module fake-quantizes ``data_in``, ``weight``, ``bias`` and ``data_out`` in ``forward``, each
operand only when it has a :class:`QuantSpec`. The specs are a plain attribute (``quant``), not parameters
or buffers: a quantized module's ``state_dict`` has exactly the keys of its float module, so a float
checkpoint loads into a quantized graph and back. The one exception is the ``learned`` quantizer, whose
trainable fracs and activation ranges live in a ``learned`` submodule (:mod:`netcarve.transforms.quantize.learned`).

Which float class gets which quantized class is the op registry's fact (``OpSpec.quantized`` in
:mod:`netcarve.ir.opspecs`): an import string naming a class of this module, resolved lazily here so that
``ir`` never imports ``transforms``, or ``"elementwise"``, for which :func:`quantized_class` builds (once per
float class) a subclass of :class:`QuantizedElementwise` — a new elementwise kind is quantizable with no
class written for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from netcarve.ir.opspecs import ELEMENTWISE, OPS, is_exact_class, resolve, spec_of_class
from netcarve.train.resources import LEARNED
from netcarve.transforms.quantize.quantizers import QuantSpec


class QuantizedModule(nn.Module):
    """Mixin of every quantized module: ``quant`` maps operand name → QuantSpec (missing = float)."""

    quant: Mapping[str, QuantSpec] = MappingProxyType({})

    def q(self, operand: str, x: torch.Tensor) -> torch.Tensor:
        spec = self.quant.get(operand)
        if spec is None:
            return x
        learned = self._modules.get(LEARNED)  # a learned operand's state (transforms.quantize.learned)
        if learned is not None and operand in learned._modules:
            return learned._modules[operand](x, spec)  # type: ignore[misc]
        return spec(x)

    def q_opt(self, operand: str, x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else self.q(operand, x)

    def quant_value(self, operand: str) -> torch.Tensor | None:
        """The tensor an automatic frac of ``operand`` follows now: its weight or bias (None for data)."""
        value = getattr(self, operand, None) if operand in ("weight", "bias") else None
        return value if isinstance(value, torch.Tensor) else None

    def extra_repr(self) -> str:
        base = super().extra_repr()
        quant = ", ".join(f"{op}={spec.describe(self.quant_value(op))}" for op, spec in self.quant.items())
        return f"{base}, quant=[{quant}]" if base else f"quant=[{quant}]"


class QuantizedLinear(QuantizedModule, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(self.q("data_in", x), self.q("weight", self.weight), self.q_opt("bias", self.bias))
        return self.q("data_out", y)


class _QuantizedConv(QuantizedModule):
    """The forward of every quantized convolution (mixed in before ``nn.Conv1d``/``nn.Conv2d``, whose
    ``_conv_forward`` it calls)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    _conv_forward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._conv_forward(self.q("data_in", x), self.q("weight", self.weight), self.q_opt("bias", self.bias))
        return self.q("data_out", y)


class QuantizedConv1d(_QuantizedConv, nn.Conv1d):
    pass


class QuantizedConv2d(_QuantizedConv, nn.Conv2d):
    pass


class QuantizedReLU(QuantizedModule, nn.ReLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q("data_out", F.relu(self.q("data_in", x), inplace=self.inplace))


def _batch_norm(bn: _BatchNorm, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> Any:
    """``_BatchNorm.forward`` with the affine parameters replaced (running statistics as in torch)."""
    bn._check_input_dim(x)
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    track = not bn.training or bn.track_running_stats
    return F.batch_norm(
        x,
        bn.running_mean if track else None,
        bn.running_var if track else None,
        weight,
        bias,
        batch_stats,
        momentum,
        bn.eps,
    )


class QuantizedBatchNorm1d(QuantizedModule, nn.BatchNorm1d):
    """Quantizes the input, the affine weight and bias, and the output; running statistics stay float."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _batch_norm(self, self.q("data_in", x), self.q_opt("weight", self.weight), self.q_opt("bias", self.bias))
        return self.q("data_out", y)


class QuantizedBatchNorm2d(QuantizedModule, nn.BatchNorm2d):
    """Quantizes the input, the affine weight and bias, and the output; running statistics stay float."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _batch_norm(self, self.q("data_in", x), self.q_opt("weight", self.weight), self.q_opt("bias", self.bias))
        return self.q("data_out", y)


class QuantizedElementwise(QuantizedModule):
    """Base of the generated quantized class of an elementwise kind: data_in → float forward → data_out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q("data_out", super().forward(self.q("data_in", x)))


_GENERATED: dict[type[nn.Module], type[QuantizedModule]] = {}


def quantized_class(cls: type[nn.Module]) -> type[QuantizedModule] | None:
    """The quantized subclass of float class ``cls`` by its op spec; None when it has none. Only registered
    classes themselves (a user subclass may have its own forward)."""
    spec = spec_of_class(cls)
    if spec is None or spec.quantized is None or not is_exact_class(cls):
        return None
    if spec.quantized == ELEMENTWISE:
        if cls not in _GENERATED:
            _GENERATED[cls] = type(f"Quantized{cls.__name__}", (QuantizedElementwise, cls), {})
        return _GENERATED[cls]
    found = resolve(spec.quantized)
    assert isinstance(found, type) and issubclass(found, QuantizedModule), spec.quantized
    return found


def _quantized_classes() -> dict[type[nn.Module], type[QuantizedModule]]:
    table: dict[type[nn.Module], type[QuantizedModule]] = {}
    for kind in OPS:
        for cls in OPS.get(kind).modules:
            q = quantized_class(cls)
            if q is not None:
                table[cls] = q
    return table


#: float module class → its quantized subclass, for the built-in kinds (a view of the op registry)
QUANTIZED_CLASSES: dict[type[nn.Module], type[QuantizedModule]] = _quantized_classes()


def float_class(module: nn.Module) -> type[nn.Module]:
    """The float class of ``module`` (its own class unless it is already quantized)."""
    cls = type(module)
    if isinstance(module, QuantizedModule):
        for base in cls.__mro__[1:]:
            if issubclass(base, nn.Module) and not issubclass(base, QuantizedModule) and quantized_class(base):
                return base
    return cls


def can_quantize(module: nn.Module) -> bool:
    return quantized_class(float_class(module)) is not None


def quantize_module(module: nn.Module, quant: Mapping[str, QuantSpec]) -> QuantizedModule:
    """A quantized module over ``module``'s parameters and buffers (shared, not copied: pass a copy).

    Re-quantizing an already quantized module replaces its specs.
    """
    cls = quantized_class(float_class(module))
    assert cls is not None, f"{type(module).__name__} has no quantized class"
    new = cls.__new__(cls)
    new.__dict__.update(module.__dict__)
    new.quant = dict(quant)
    return new
