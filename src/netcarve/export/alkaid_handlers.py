"""alkaid's torch converter handlers for netcarve's quantized modules (imported by
:func:`netcarve.export.alkaid_plugin.register`; the class statements register them).

Each handler replays one quantized module on alkaid's symbolic arrays exactly as the export's program does
(:mod:`netcarve.export.program`), with the export's own pieces rather than a second copy of them: an
operand's format is :func:`~netcarve.export.program.fixed_format` of its quantizer, a weight or bias is
:func:`~netcarve.export.program.quantized_constant` (the quantizer applied in float64), and every rounding
is :func:`~netcarve.export.alkaid.quantize_traced` (alkaid's modes, round half to even built from TRN, and
constants quantized by netcarve). The matrix products and bias additions are alkaid's own replays of
``nn.Linear`` and ``nn.Conv*d`` (exact), fed the quantized constants.

A quantized BatchNorm is refused: ``netcarve export`` folds it into the Linear or Conv before it and
requantizes that layer's weights, which a module-by-module replay cannot do. Trace
:func:`netcarve.export.alkaid_plugin.firmware_module` instead, the graph the firmware computes.

alkaid's handler registry (``ReplayModuleBase`` and its metaclass, the replays of ``nn.Linear`` and
``nn.Conv*d``) lives in ``alkaid.converter.builtin.torch.layers.modules``, a module without a leading
underscore but not re-exported by alkaid: it is the documented way to write an ``alkaid_torch`` plugin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from alkaid.converter.builtin.torch.layers.modules import ReplayConv, ReplayLinear, ReplayModuleBase
from alkaid.trace import FVArray

from netcarve.errors import ExportError, PassError
from netcarve.export.alkaid import alkaid_kit, quantize_traced
from netcarve.export.program import fixed_format, flat, quantized_constant
from netcarve.transforms.quantize.modules import (
    QuantizedBatchNorm1d,
    QuantizedBatchNorm2d,
    QuantizedConv1d,
    QuantizedConv2d,
    QuantizedLinear,
    QuantizedModule,
    QuantizedReLU,
)

#: how the refusals start (the user sees alkaid's traceback end with it)
WHO = "netcarve's alkaid plugin"


def _where(module: QuantizedModule, operand: str) -> str:
    return f"{WHO}: {type(module).__name__}'s {operand}"


def quantize_operand(module: QuantizedModule, operand: str, x: FVArray) -> FVArray:
    """``x`` through ``module``'s ``operand`` quantizer, as the export rounds it (unchanged when the operand
    is float, as in netcarve's forward)."""
    spec = module.quant.get(operand)
    if spec is None:
        return x
    try:
        fmt = flat(fixed_format(spec, _where(module, operand), tuple(x.shape[1:])))  # x: one sample, batch 1
    except PassError as exc:
        raise ExportError(str(exc)) from exc
    return quantize_traced(x, fmt, alkaid_kit())


def quantized_parameter(module: QuantizedModule, name: str) -> np.ndarray:
    """A weight or bias on its grid; a float one is refused (netcarve export refuses a float layer too)."""
    value = getattr(module, name)
    if value is None:
        return np.array(0.0)  # alkaid's convention for a missing bias
    spec = module.quant.get(name)
    if spec is None:
        raise ExportError(
            f"{WHO}: {type(module).__name__} has a float {name}; quantize it with the integer quantizer to trace "
            "it bit-exactly (netcarve export refuses it too)"
        )
    try:
        return quantized_constant(spec, value, _where(module, name))[1]
    except PassError as exc:
        raise ExportError(str(exc)) from exc


class _QuantizedLayer:
    """Mixin for alkaid's replays of ``nn.Linear``/``nn.Conv*d``: their weight and bias come quantized, their
    input and output go through the data_in and data_out quantizers."""

    module: Any

    def _load_weight(self, name: str) -> np.ndarray:
        return quantized_parameter(self.module, name)

    def call(self, input: FVArray) -> FVArray:
        x = quantize_operand(self.module, "data_in", input)
        y = super().call(x)  # type: ignore[misc]
        return quantize_operand(self.module, "data_out", y)


class ReplayQuantizedLinear(_QuantizedLayer, ReplayLinear):
    handles = (QuantizedLinear,)


class ReplayQuantizedConv(_QuantizedLayer, ReplayConv):
    handles = (QuantizedConv1d, QuantizedConv2d)

    def call(self, input: FVArray) -> FVArray:
        if self.module.padding_mode != "zeros":
            raise ExportError(
                f"{WHO}: {type(self.module).__name__} pads with {self.module.padding_mode!r}; alkaid's convolution "
                "pads with zeros only (use netcarve export --to alkaid)"
            )
        return super().call(input)


class ReplayQuantizedReLU(ReplayModuleBase):
    handles = (QuantizedReLU,)

    def call(self, input: FVArray) -> FVArray:
        x = quantize_operand(self.module, "data_in", input)
        return quantize_operand(self.module, "data_out", alkaid_kit().relu(x))


class RefuseQuantizedBatchNorm(ReplayModuleBase):
    handles = (QuantizedBatchNorm1d, QuantizedBatchNorm2d)

    def call(self, input: FVArray) -> FVArray:
        raise ExportError(
            f"{WHO}: {type(self.module).__name__} is folded into the layer before it by netcarve export, which "
            "requantizes that layer's weights: trace netcarve.export.alkaid_plugin.firmware_module(graph), or run "
            "netcarve export --to alkaid"
        )
