"""Models: registered JSC MLPs and user-provided modules."""

from __future__ import annotations

from torch import nn

from netcarve.data.base import DatasetInfo
from netcarve.models import cnn, jsc  # noqa: F401  (registers the models)
from netcarve.models.base import MODELS
from netcarve.models.user import build_user_model, is_user_model

__all__ = ["MODELS", "create_model"]


def create_model(name: str, info: DatasetInfo, input_shape: tuple[int, ...] | None = None) -> nn.Module:
    """Build a registered model (or ``module:callable`` user model) for a dataset's shape; a user model is
    checked on one sample of ``input_shape`` when given, else of ``(info.in_features,)``."""
    if is_user_model(name):
        return build_user_model(name, info, input_shape)
    return MODELS.get(name)(info)
