"""Small hand-countable networks for the analysis tests (each docstring states its shapes)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvResidual(nn.Module):
    """(B, 4, 10) → Conv1d(4, 4, k=3, pad=1) → BN1d(4) → + input → relu."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 4, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn(self.conv(x)))


class StridedGroupedConv(nn.Module):
    """(B, 4, 9, 9) → Conv2d(4, 8, 3, stride 2, pad 1, groups 2) → ReLU → Conv2d(8, 4, (3,1), pad (1,0),
    groups 4, no bias) → (B, 4, 5, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, kernel_size=3, stride=2, padding=1, groups=2)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 4, kernel_size=(3, 1), padding=(1, 0), groups=4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class FunctionalMLP(nn.Module):
    """(B, 16) → relu(x @ w1 + b1) → F.linear(·, w2) → × 2, parameters held directly (no modules)."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(16, 8))
        self.b1 = nn.Parameter(torch.zeros(8))
        self.w2 = nn.Parameter(torch.randn(5, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x @ self.w1 + self.b1)
        return F.linear(h, self.w2) * 2.0


class Attention(nn.Module):
    """(B, T=4, d=8): q, k, v = Linear(8, 8)(x); softmax(q @ kᵀ · 8^-½) @ v → (B, 4, 8)."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.scale = d**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q(x), self.k(x), self.v(x)
        scores = (q @ k.transpose(-2, -1)) * self.scale
        return torch.softmax(scores, dim=-1) @ v


class HalvedLinear(nn.Linear):
    """A user subclass of nn.Linear whose forward adds an elementwise × 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 0.5


class Diamond(nn.Module):
    """(B, 16) → relu(Linear(16, 32)(x)) + Linear(16, 32)(x): a branch that keeps x alive, then a merge."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 32)
        self.b = nn.Linear(16, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.a(x)) + self.b(x)


class WithCumsum(nn.Module):
    """(B, 16) → Linear(16, 4) → cumsum → cumsum → exp: three ops without a formula."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.fc(x).cumsum(-1).cumsum(-1))


class MixedOps(nn.Module):
    """(B, 2, 3) → flatten(1) → Linear(6, 4) → Dropout → Softmax → Identity → .relu() × buffer + parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 4)
        self.drop = nn.Dropout(0.5)
        self.sm = nn.Softmax(dim=-1)
        self.id = nn.Identity()
        self.register_buffer("scale", torch.ones(4))
        self.p = nn.Parameter(torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.sm(self.drop(self.fc(torch.flatten(x, 1))))
        return self.id(y).relu() * self.scale + self.p


class GlobalPoolCNN(nn.Module):
    """(B, 1, 8, 8) → Conv2d(1, 4, 3) → ReLU → global average pooling → (B, 4) → Linear(4, 3).

    ``functional``: the pooling written as ``x.mean((2, 3))`` instead of ``AdaptiveAvgPool2d(1)`` + flatten."""

    def __init__(self, functional: bool = False) -> None:
        super().__init__()
        self.functional = functional
        self.conv = nn.Conv2d(1, 4, kernel_size=3)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv(x))
        x = x.mean((2, 3)) if self.functional else torch.flatten(self.pool(x), 1)
        return self.fc(x)
