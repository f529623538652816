"""The ``quantize`` transform pass: swap modules for their quantized subclasses and record precision."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netcarve.config.passes import OPERANDS, QuantizePassConfig, coerce_pass_config
from netcarve.ir.graph import Graph
from netcarve.ir.passes import PassResult, register_pass
from netcarve.transforms.quantize.learned import BetaSchedule, attach
from netcarve.transforms.quantize.modules import quantize_module
from netcarve.transforms.quantize.plan import QuantLayerPlan, plan_quantization

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizeInfo:
    """What the pass did: one :class:`QuantLayerPlan` per quantized node, in graph order."""

    layers: tuple[QuantLayerPlan, ...]

    def rows(self) -> list[tuple[str, ...]]:
        """The per-layer table: node, kind, then each operand's precision (``-`` = float), e.g.
        ``("seq_blocks_2", "linear", "uinteger(8,4)", "integer(8,4)", "integer(8,4)", "-")``; an automatic frac
        shows the frac the pass's weights gave it (``integer(3,auto→4)``)."""
        return [
            (
                p.node,
                p.kind,
                *(p.described.get(op) or p.operands[op].describe() if op in p.operands else "-" for op in OPERANDS),
            )
            for p in self.layers
        ]

    def table(self) -> str:
        """:meth:`rows` as aligned text with a header line (``(no layer quantized)`` when empty)."""
        if not self.layers:
            return "(no layer quantized)"
        lines = [("node", "kind", *OPERANDS), *self.rows()]
        widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines
        )


def as_quantize_config(config: QuantizePassConfig | Mapping[str, Any] | None) -> QuantizePassConfig:
    """A validated config from a model, a MASE-layout dict ("NA" allowed) or None (= leave all float)."""
    return coerce_pass_config(QuantizePassConfig, config, "passes.quantize")


@register_pass("quantize")
def quantize_transform_pass(
    graph: Graph, config: QuantizePassConfig | Mapping[str, Any] | None = None
) -> PassResult[QuantizeInfo]:
    """Quantize layers by type or name (fake quantization, straight-through gradient); returns a new graph.

    The input graph and the config are not mutated. Each quantized node's ``NodeMeta.precision`` holds its
    quantized operands (``data_in``, ``weight``, ``bias``, ``data_out``); float operands are absent.
    Nodes the config leaves float ("NA") keep what they had (so quantize passes compose). With
    ``report = true`` the per-layer table of precisions applied (:meth:`QuantizeInfo.table`) is logged.
    """
    cfg = as_quantize_config(config)
    plans = plan_quantization(graph, cfg)
    gm = copy.deepcopy(graph.module)
    beta = BetaSchedule.of(cfg)
    for plan in plans:
        module = quantize_module(gm.get_submodule(plan.target), plan.operands)
        attach(graph, module, plan.node, plan.operands, beta)
        gm.set_submodule(plan.target, module)
    spec = graph.spec.with_transform("quantize", cfg.to_mase_dict()) if graph.spec is not None else None
    new = graph.derive(gm, spec)
    for plan in plans:
        new.set_precision(plan.node, {op: s.precision() for op, s in plan.operands.items()})
    info = QuantizeInfo(plans)
    if cfg.report:
        log.info("quantize: precisions applied\n%s", info.table())
    return PassResult(new, info)
