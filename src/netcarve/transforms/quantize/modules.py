"""Quantized modules: each subclasses its float module, so code that handles ``nn.Linear`` still works.

A quantized module fake-quantizes ``data_in``, ``weight``, ``bias`` and ``data_out`` in ``forward``, each
operand only when it has a :class:`QuantSpec`. The specs are a plain attribute (``quant``), not parameters
or buffers: a quantized module's ``state_dict`` has exactly the keys of its float module, so a float
checkpoint loads into a quantized graph and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from netcarve.transforms.quantize.quantizers import QuantSpec


class QuantizedModule(nn.Module):
    """Mixin of every quantized module: ``quant`` maps operand name → QuantSpec (missing = float)."""

    quant: Mapping[str, QuantSpec] = MappingProxyType({})

    def q(self, operand: str, x: torch.Tensor) -> torch.Tensor:
        spec = self.quant.get(operand)
        return x if spec is None else spec(x)

    def q_opt(self, operand: str, x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else self.q(operand, x)

    def extra_repr(self) -> str:
        base = super().extra_repr()
        quant = ", ".join(f"{op}={spec.describe()}" for op, spec in self.quant.items())
        return f"{base}, quant=[{quant}]" if base else f"quant=[{quant}]"


class QuantizedLinear(QuantizedModule, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(self.q("data_in", x), self.q("weight", self.weight), self.q_opt("bias", self.bias))
        return self.q("data_out", y)


class QuantizedConv1d(QuantizedModule, nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._conv_forward(self.q("data_in", x), self.q("weight", self.weight), self.q_opt("bias", self.bias))
        return self.q("data_out", y)


class QuantizedConv2d(QuantizedModule, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._conv_forward(self.q("data_in", x), self.q("weight", self.weight), self.q_opt("bias", self.bias))
        return self.q("data_out", y)


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


#: float module class → its quantized subclass (exact classes: a user subclass may have its own forward)
QUANTIZED_CLASSES: dict[type[nn.Module], type[QuantizedModule]] = {
    nn.Linear: QuantizedLinear,
    nn.Conv1d: QuantizedConv1d,
    nn.Conv2d: QuantizedConv2d,
    nn.ReLU: QuantizedReLU,
    nn.BatchNorm1d: QuantizedBatchNorm1d,
    nn.BatchNorm2d: QuantizedBatchNorm2d,
}


def float_class(module: nn.Module) -> type[nn.Module]:
    """The float class of ``module`` (its own class unless it is already quantized)."""
    cls = type(module)
    if isinstance(module, QuantizedModule):
        for base in cls.__mro__[1:]:
            if base in QUANTIZED_CLASSES:
                return base
    return cls


def can_quantize(module: nn.Module) -> bool:
    return float_class(module) in QUANTIZED_CLASSES


def quantize_module(module: nn.Module, quant: Mapping[str, QuantSpec]) -> QuantizedModule:
    """A quantized module over ``module``'s parameters and buffers (shared, not copied: pass a copy).

    Re-quantizing an already quantized module replaces its specs.
    """
    cls = QUANTIZED_CLASSES[float_class(module)]
    new = cls.__new__(cls)
    new.__dict__.update(module.__dict__)
    new.quant = dict(quant)
    return new
