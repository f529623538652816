"""Quantization: quantizers, quantized modules and the ``quantize`` transform pass (README: Transform)."""

from netcarve.transforms.quantize.api import quantize
from netcarve.transforms.quantize.modules import QUANTIZED_CLASSES, QuantizedModule, quantize_module
from netcarve.transforms.quantize.pass_ import QuantizeInfo, quantize_transform_pass
from netcarve.transforms.quantize.plan import LayerPlan, plan_quantization, resolve_layer
from netcarve.transforms.quantize.quantizers import QUANTIZERS, QuantSpec, in_fake_quant

__all__ = [
    "QUANTIZED_CLASSES",
    "QUANTIZERS",
    "LayerPlan",
    "QuantSpec",
    "QuantizeInfo",
    "QuantizedModule",
    "in_fake_quant",
    "plan_quantization",
    "quantize",
    "quantize_module",
    "quantize_transform_pass",
    "resolve_layer",
]
