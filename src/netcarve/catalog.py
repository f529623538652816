"""What ``netcarve models`` lists: each registered model with its parameter count on JSC. No printing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelRow:
    name: str
    #: trainable and frozen parameter elements of the model built for JSC (16 features, 5 classes)
    jsc_params: int
    description: str


def model_rows() -> list[ModelRow]:
    """Every registered model, in registration order, built once for the JSC schema to count its parameters."""
    from netcarve.data.jsc_schema import jsc_info
    from netcarve.models import MODELS, create_model

    info = jsc_info()
    return [
        ModelRow(e.name, sum(p.numel() for p in create_model(e.name, info).parameters()), e.description)
        for e in MODELS.entries()
    ]
