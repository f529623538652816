"""Base pydantic model for every config table: strict keys, frozen, no booleans for numbers."""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

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


def takes_text(annotation: Any) -> bool:
    """Whether a field of this annotation accepts some string (``str``, or a Literal such as ``"auto"``)."""
    args = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    return any(arg is str or get_origin(arg) is Literal for arg in args)


def _takes_float(annotation: Any) -> bool:
    args = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    return float in args


class Strict(BaseModel):
    """A config table: unknown keys are errors, instances are immutable.

    Every int or float field is strict where pydantic's lax mode would convert: it refuses a boolean (``true``
    read as 1), a string (``max_epochs = "1"``) unless the field also takes text, and an integer field a
    float (``max_epochs = 1.0``). The error names the key, e.g. ``invalid value for 'max_epochs': a boolean is
    not an integer (got True)``. Every float field refuses ``inf`` and ``nan`` (``Input should be a finite
    number``); an integer is fine for a float.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None or not isinstance(value, bool | str | float):
            return value
        annotation = cls.model_fields[info.field_name].annotation
        kind = number_kind(annotation)
        if kind is None:
            return value
        if isinstance(value, bool):
            raise ValueError(f"a boolean is not {kind}")
        if isinstance(value, str) and not takes_text(annotation):
            raise ValueError(f"a string is not {kind}: write the number without quotes")
        if isinstance(value, float) and not _takes_float(annotation):
            raise ValueError("a number with a decimal point or exponent is not an integer: write it as one")
        return value
