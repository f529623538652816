"""The ``quantize`` transform pass: swap modules for their quantized subclasses and record precision."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netcarve.config.passes import QuantizePassConfig, coerce_pass_config
from netcarve.ir.graph import Graph
from netcarve.ir.passes import PassResult, register_pass
from netcarve.transforms.quantize.modules import quantize_module
from netcarve.transforms.quantize.plan import LayerPlan, plan_quantization


@dataclass(frozen=True)
class QuantizeInfo:
    """What the pass did: one :class:`LayerPlan` per quantized node, in graph order."""

    layers: tuple[LayerPlan, ...]

    @property
    def quantized_nodes(self) -> list[str]:
        return [layer.node for layer in self.layers]


def as_quantize_config(config: QuantizePassConfig | Mapping[str, Any] | None) -> QuantizePassConfig:
    """A validated config from a model, a MASE-layout dict ("NA" allowed) or None (= leave all float)."""
    return coerce_pass_config(QuantizePassConfig, config, "quantize config")


@register_pass("quantize", kind="transform")
def quantize_transform_pass(
    graph: Graph, config: QuantizePassConfig | Mapping[str, Any] | None = None
) -> PassResult[QuantizeInfo]:
    """Quantize layers by type or name (fake quantization, straight-through gradient); returns a new graph.

    The input graph and the config are not mutated. Each quantized node's ``NodeMeta.precision`` holds its
    quantized operands (``data_in``, ``weight``, ``bias``, ``data_out``); float operands are absent.
    Nodes the config leaves float ("NA") keep what they had (so quantize passes compose).
    """
    cfg = as_quantize_config(config)
    plans = plan_quantization(graph, cfg)
    gm = copy.deepcopy(graph.module)
    for plan in plans:
        gm.set_submodule(plan.target, quantize_module(gm.get_submodule(plan.target), plan.operands))
    spec = graph.spec.with_transform("quantize", cfg.to_mase_dict()) if graph.spec is not None else None
    new = graph.derive(gm, spec)
    for plan in plans:
        new.set_precision(plan.node, {op: s.precision() for op, s in plan.operands.items()})
    return PassResult(new, QuantizeInfo(plans))
