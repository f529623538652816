"""A small CNN for images given as flat feature vectors (``digits``: 64 features = one 8×8 image).

The model views its input ``(B, F)`` as ``(B, 1, s, s)`` with ``s = √F`` itself (``nn.Unflatten``), so the
dataset stays a flat feature vector and ``train``/``test``/``analyze``/``transform``/``search`` run on it
unchanged. On digits (8×8, 10 classes)::

    Unflatten → Conv2d(1, 8, 3, pad 1) → BatchNorm2d(8) → ReLU → MaxPool2d(2)          8×8 → 4×4
    → Conv2d(8, 16, 3, pad 1) → ReLU → AdaptiveAvgPool2d(2) → Flatten → Linear(64, 10)   4×4 → 2×2 → 64
"""

from __future__ import annotations

import math

from torch import nn

from netcarve.data.base import DatasetInfo
from netcarve.errors import ModelError
from netcarve.models.base import MODELS
from netcarve.models.jsc import SeqBlocks

#: output channels of the two convolutions and the pooled side the classifier sees
CHANNELS = (8, 16)
POOLED = 2


@MODELS.register(
    "digits-cnn", description="Conv-BN-ReLU-MaxPool-Conv-ReLU-AvgPool-Linear on √F×√F images — 1914 params on digits"
)
def digits_cnn(info: DatasetInfo) -> nn.Module:
    side = math.isqrt(info.in_features)
    if side * side != info.in_features or side < 2:
        raise ModelError(
            f"digits-cnn views the {info.in_features} features as a square image: needs a square number ≥ 4"
        )
    c1, c2 = CHANNELS
    return SeqBlocks(
        nn.Unflatten(1, (1, side, side)),
        nn.Conv2d(1, c1, 3, padding=1),
        nn.BatchNorm2d(c1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(POOLED),
        nn.Flatten(),
        nn.Linear(c2 * POOLED * POOLED, info.num_classes),
    )
