"""Helpers shared by the quantization tests."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from netcarve.data.base import DatasetInfo
from netcarve.ir.graph import Graph, ModelSpec
from netcarve.models import create_model

INFO = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))
X = torch.randn(64, 16, generator=torch.Generator().manual_seed(1)) * 1.5


def settled(module: nn.Module, seed: int = 0, in_shape: tuple[int, ...] = (16,), passes: int = 3) -> nn.Module:
    """Random BN affine parameters and running statistics (a few train passes), then eval mode."""
    torch.manual_seed(seed)
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(sub.weight, 0.5, 1.5)
            nn.init.uniform_(sub.bias, -0.5, 0.5)
    module.train()
    with torch.no_grad():
        for _ in range(passes):
            module(torch.randn(64, *in_shape) * 2 + 0.5)
    return module.eval()


class Residual(nn.Module):
    """Two Linears feeding an add, then a Linear: 4 → (6 + 6) → 3."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(4, 6), nn.Linear(4, 6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.a(x) + self.b(x)))


def model_graph(name: str, seed: int = 0) -> Graph:
    torch.manual_seed(seed)
    return Graph.from_module(settled(create_model(name, INFO), seed), (16,), ModelSpec(name, INFO.to_dict()))


def entry(name: str | None = None, **settings: Any) -> dict[str, Any]:
    return {"config": {"name": name, **settings}}


def integer(width: int, frac: int | None = None, operands: tuple[str, ...] = ("data_in", "weight", "bias")) -> dict:
    """An ``integer`` entry with the same width/frac for each operand."""
    settings: dict[str, Any] = {}
    for op in operands:
        settings[f"{op}_width"] = width
        settings[f"{op}_frac_width"] = frac
    return entry("integer", **settings)


def outputs(graph: Graph, x: torch.Tensor = X) -> torch.Tensor:
    graph.module.eval()
    with torch.no_grad():
        return graph(x)
