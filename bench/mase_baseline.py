"""Pieces the benchmarks' MASE-style baselines share (MASE trains from per-sample Datasets)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from netcarve.data.base import Split


class PerSampleDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """MASE's JSC dataset: one (x, y) pair per __getitem__, batched by the DataLoader's collate."""

    def __init__(self, split: Split) -> None:
        self.x, self.y = split.x, split.y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]
