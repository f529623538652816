"""``netcarve.quantize(model_or_graph, config)``: the Python API of the quantize pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from netcarve.config.passes import QuantizePassConfig
from netcarve.ir.graph import Graph
from netcarve.ir.opspecs import require_input_shape
from netcarve.transforms.quantize.pass_ import quantize_transform_pass


def quantize(
    model: nn.Module | Graph,
    config: QuantizePassConfig | Mapping[str, Any],
    *,
    input_shape: Sequence[int] | None = None,
) -> Graph:
    """Quantize a model or graph; returns a new :class:`Graph` (the input is not changed).

    ``config`` is a :class:`QuantizePassConfig` or a MASE-layout dict (``"NA"`` allowed), e.g.
    ``{"by": "type", "default": {"config": {"name": "NA"}}, "linear": {"config": {"name": "integer",
    "weight_width": 8, "weight_frac_width": 4}}}``. An ``nn.Module`` is traced with ``input_shape`` (one
    sample, no batch dimension), inferred from its first ``nn.Linear`` when not given.
    """
    if isinstance(model, Graph):
        graph = model
    else:
        shape = tuple(input_shape) if input_shape is not None else require_input_shape(model)
        graph = Graph.from_module(model, shape)
    return quantize_transform_pass(graph, config).graph
