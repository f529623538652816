"""The ``width`` transform pass (alias ``channel_multiplier``): the registered entry over :func:`apply_width`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netcarve.config.passes import WidthPassConfig
from netcarve.ir.graph import Graph
from netcarve.ir.passes import PassResult, register_pass
from netcarve.transforms.width import WidthInfo, apply_width, parse_config


@register_pass("width")
def width_transform_pass(
    graph: Graph, config: WidthPassConfig | Mapping[str, Any] | None = None
) -> PassResult[WidthInfo]:
    """Change the channel width of Linear/Conv layers; consumers and BatchNorms follow (net2net init)."""
    return apply_width(graph, parse_config(config))
