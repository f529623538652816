"""The JSC MLPs of MASE (node names ``seq_blocks_N``) and the hls4ml tutorial jet tagger.

``nn.ReLU()`` everywhere: MASE's ``nn.ReLU(16)`` silently meant ``inplace=True``.
"""

from __future__ import annotations

import torch
from torch import nn

from netcarve.data.base import DatasetInfo
from netcarve.models.base import MODELS


class SeqBlocks(nn.Module):
    """A sequential stack under the attribute ``seq_blocks``: fx names its nodes ``seq_blocks_0 …``."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.seq_blocks = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq_blocks(x)


def _mlp(widths: list[int], bn_after: set[int], bn_input: bool = True, bn_last: bool = True) -> list[nn.Module]:
    """Linear layers ``widths[i] → widths[i+1]``, each followed by optional BatchNorm then ReLU."""
    layers: list[nn.Module] = []
    if bn_input:
        layers += [nn.BatchNorm1d(widths[0]), nn.ReLU()]
    last = len(widths) - 2
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i in bn_after or (i == last and bn_last):
            layers.append(nn.BatchNorm1d(widths[i + 1]))
        layers.append(nn.ReLU())
    return layers


@MODELS.register("jsc-tiny", description="BN, ReLU, Linear(F,C), ReLU — 117 params on JSC")
def jsc_tiny(info: DatasetInfo) -> nn.Module:
    return SeqBlocks(*_mlp([info.in_features, info.num_classes], set(), bn_last=False))


@MODELS.register("jsc-toy", description="F→8→8→C with BatchNorm and ReLU — 327 params on JSC")
def jsc_toy(info: DatasetInfo) -> nn.Module:
    return SeqBlocks(*_mlp([info.in_features, 8, 8, info.num_classes], {0, 1}))


@MODELS.register("jsc-three-linear-layers", description="F→16→16→C with ReLU — 661 params on JSC (Lab 4)")
def jsc_three_linear_layers(info: DatasetInfo) -> nn.Module:
    return SeqBlocks(*_mlp([info.in_features, 16, 16, info.num_classes], set(), bn_last=False))


@MODELS.register("jsc-s", description="F→64→32→32→32→C with BatchNorm — 5615 params on JSC")
def jsc_s(info: DatasetInfo) -> nn.Module:
    return SeqBlocks(*_mlp([info.in_features, 64, 32, 32, 32, info.num_classes], {0}))


class Hls4mlJet(SeqBlocks):
    """The hls4ml tutorial MLP F→64→32→32→C with ReLU (logits out: no softmax)."""

    def __init__(self, info: DatasetInfo) -> None:
        f, c = info.in_features, info.num_classes
        layers: list[nn.Module] = [
            nn.Linear(f, 64),
            nn.ReLU(),
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.Linear(32, 32),
            nn.ReLU(),
            nn.Linear(32, c),
        ]
        super().__init__(*layers)


@MODELS.register("hls4ml-jet", description="hls4ml tutorial MLP F→64→32→32→C — 4389 params on JSC")
def hls4ml_jet(info: DatasetInfo) -> nn.Module:
    return Hls4mlJet(info)
