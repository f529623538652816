"""Base pydantic model for every config table: strict keys, frozen, no booleans for numbers."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def number_kind(annotation: Any) -> str | None:
    """What a field of this annotation takes ("an integer", "a number"), None if a bool is fine or no number."""
    args = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    if bool in args:
        return None
    if int in args:
        return "an integer"
    if float in args:
        return "a number"
    return None


class Strict(BaseModel):
    """A config table: unknown keys are errors, instances are immutable.

    Every int or float field refuses a boolean (pydantic's lax mode would read ``true`` as 1): the error
    names the key, e.g. ``invalid value for 'max_epochs': a boolean is not an integer (got True)``. Every
    float field refuses ``inf`` and ``nan`` (``Input should be a finite number``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            kind = number_kind(cls.model_fields[info.field_name].annotation)
            if kind is not None:
                raise ValueError(f"a boolean is not {kind}")
        return value
