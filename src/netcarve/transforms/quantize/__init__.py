"""Quantization: quantizers, quantized modules and the ``quantize`` transform pass (README: Transform)."""

from netcarve.ir.fakequant import in_fake_quant
from netcarve.transforms.quantize.api import quantize
from netcarve.transforms.quantize.formats import set_formats
from netcarve.transforms.quantize.learned import ebops, freeze_learned
from netcarve.transforms.quantize.modules import QUANTIZED_CLASSES, QuantizedModule, quantize_module
from netcarve.transforms.quantize.pass_ import QuantizeInfo, quantize_transform_pass
from netcarve.transforms.quantize.plan import QuantLayerPlan, plan_quantization
from netcarve.transforms.quantize.quantizers import QUANTIZERS, ElementFormats, QuantSpec

__all__ = [
    "QUANTIZED_CLASSES",
    "QUANTIZERS",
    "ElementFormats",
    "QuantLayerPlan",
    "QuantSpec",
    "QuantizeInfo",
    "QuantizedModule",
    "ebops",
    "freeze_learned",
    "in_fake_quant",
    "plan_quantization",
    "quantize",
    "quantize_module",
    "quantize_transform_pass",
    "set_formats",
]
