"""The model registry: builders take the dataset's :class:`DatasetInfo`."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from netcarve.data.base import DatasetInfo
from netcarve.registry import Registry

ModelBuilder = Callable[[DatasetInfo], nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")
