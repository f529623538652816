"""Config models of the transform passes (``[passes.quantize]``, ``[passes.width]``, ``[passes.fold_batchnorm]``),
MASE's layout.

A pass table has a few fixed keys (``by``, ``default``, …); every other key is an entry naming an op type
(``linear``) or an fx node (``seq_blocks_2``), each holding a ``config`` table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar, get_args

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from netcarve.config.base import Strict
from netcarve.errors import ConfigError

OPERANDS = ("data_in", "weight", "bias", "data_out")
#: ``<operand>_frac_width = "auto"``: the integer quantizer takes the frac from the width and the values' range
AUTO = "auto"
#: the operands that may have an automatic frac: their values are the tensor itself at every forward pass
#: (data_in/data_out would need a range calibrated over batches and stored; not implemented)
AUTO_OPERANDS = ("weight", "bias")
FracWidth = int | Literal["auto"] | None
_SUFFIXES = ("width", "frac_width", "exponent_width", "exponent_bias", "round", "overflow", "granularity")

#: The names of the fixed-point quantizer's modes (README: Transform): how it rounds x · 2^frac to an integer
#: k (round half to even, the default; half up; truncate) and what it does with a k outside its range (clamp,
#: the default; two's-complement wrap-around). Their semantics and their names in hls4ml and alkaid live in
#: ``netcarve.ir.fixedpoint`` (this module imports no torch).
RoundMode = Literal["nearest_even", "nearest_up", "truncate"]
OverflowMode = Literal["saturate", "wrap"]
ROUND_MODES: tuple[str, ...] = get_args(RoundMode)
OVERFLOW_MODES: tuple[str, ...] = get_args(OverflowMode)
DEFAULT_ROUND, DEFAULT_OVERFLOW = ROUND_MODES[0], OVERFLOW_MODES[0]
#: What the ``learned`` quantizer learns one frac for (``<operand>_granularity``; README: Transform): each
#: element, each output channel (a weight's row, a bias element, an activation's feature or image channel), or
#: the whole layer's operand.
Granularity = Literal["element", "channel", "layer"]
GRANULARITIES: tuple[str, ...] = get_args(Granularity)


class QuantLayerConfig(Strict):
    """One layer's quantization: ``name`` is the quantizer (None / "NA" = leave the layer float).

    ``<operand>_round`` / ``<operand>_overflow`` unset (None) mean the defaults ``nearest_even`` / ``saturate``.
    ``<operand>_frac_width``: 0..width, None (width // 2) or ``"auto"`` (weight and bias only: the frac follows
    the tensor's range, README: Transform).
    """

    name: str | None = None
    data_in_width: int | None = Field(default=None, ge=1, le=64)
    data_in_frac_width: FracWidth = None
    data_in_exponent_width: int | None = None
    data_in_exponent_bias: int | None = None
    data_in_round: RoundMode | None = None
    data_in_overflow: OverflowMode | None = None
    data_in_granularity: Granularity | None = None
    weight_width: int | None = Field(default=None, ge=1, le=64)
    weight_frac_width: FracWidth = None
    weight_exponent_width: int | None = None
    weight_exponent_bias: int | None = None
    weight_round: RoundMode | None = None
    weight_overflow: OverflowMode | None = None
    weight_granularity: Granularity | None = None
    bias_width: int | None = Field(default=None, ge=1, le=64)
    bias_frac_width: FracWidth = None
    bias_exponent_width: int | None = None
    bias_exponent_bias: int | None = None
    bias_round: RoundMode | None = None
    bias_overflow: OverflowMode | None = None
    bias_granularity: Granularity | None = None
    data_out_width: int | None = Field(default=None, ge=1, le=64)
    data_out_frac_width: FracWidth = None
    data_out_exponent_width: int | None = None
    data_out_exponent_bias: int | None = None
    data_out_round: RoundMode | None = None
    data_out_overflow: OverflowMode | None = None
    data_out_granularity: Granularity | None = None

    @model_validator(mode="before")
    @classmethod
    def _na(cls, data: Any) -> Any:
        """MASE's "NA" is null also when a dict is validated directly (not through the TOML loader)."""
        if isinstance(data, dict):
            return {k: None if v == "NA" else v for k, v in data.items()}
        return data

    @field_validator("data_in_frac_width", "weight_frac_width", "bias_frac_width", "data_out_frac_width", mode="before")
    @classmethod
    def _frac_text(cls, value: Any, info: ValidationInfo) -> Any:
        """The one text a frac width takes is "auto" (one error naming the key, not one per union member)."""
        if isinstance(value, str) and value != AUTO:
            raise ValueError(f'{info.field_name} must be an integer or "auto"')
        return value

    @field_validator("data_in_frac_width", "weight_frac_width", "bias_frac_width", "data_out_frac_width")
    @classmethod
    def _frac_within_width(cls, value: int | str | None, info: ValidationInfo) -> int | str | None:
        """A fixed-point frac width counts bits of the word: 0 ≤ frac_width ≤ width (README, Quantization), or
        "auto" (weight and bias only: the frac follows the tensor's range, and may exceed the width)."""
        key = str(info.field_name)
        if value == AUTO:
            if key.removesuffix("_frac_width") not in AUTO_OPERANDS:
                raise ValueError(
                    f'{key} = "auto" is not supported: an automatic frac applies to weight_frac_width and '
                    "bias_frac_width only (an activation's range would need calibration); give an integer"
                )
            return value
        assert not isinstance(value, str)  # the Literal admits "auto" only
        width_key = key.replace("_frac_width", "_width")
        width = info.data.get(width_key)
        if value is not None and value < 0:
            raise ValueError(f"{key} = {value} is negative: a frac width must be in 0..{width_key}")
        if value is not None and width is not None and value > width:
            raise ValueError(f"{key} = {value} is above {width_key} = {width}: a frac width must be in 0..{width}")
        return value

    def operand(self, operand: str) -> dict[str, Any]:
        """The settings of one operand, e.g. ``{"width": 8, "frac_width": 4, …, "round": None, …}``."""
        return {s: getattr(self, f"{operand}_{s}") for s in _SUFFIXES}


#: the keys of ``[passes.quantize]`` that set the weight of EBOPs in the training loss (README: Transform)
BETA_KEYS = ("beta", "beta_end", "beta_epochs", "beta_target_ebops", "beta_factor")


class QuantEntry(Strict):
    config: QuantLayerConfig = QuantLayerConfig()


WidthMode = Literal["input_only", "output_only", "both"]


class WidthLayerConfig(Strict):
    """One layer's width change (Lab 4 format, or explicit multipliers, or a target width)."""

    name: WidthMode | None = None
    channel_multiplier: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    in_multiplier: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    out_multiplier: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    out_features: int | None = Field(default=None, ge=1)
    out_channels: int | None = Field(default=None, ge=1)
    parent_block_name: str | None = None


class WidthEntry(Strict):
    config: WidthLayerConfig = WidthLayerConfig()


def _split_entries(data: Any, fixed: tuple[str, ...]) -> Any:
    if not isinstance(data, dict):
        return data
    out = {k: v for k, v in data.items() if k in fixed}
    entries = {k: v for k, v in data.items() if k not in fixed}
    if "entries" in data:
        return data
    out["entries"] = entries
    return out


class _EntryTable(Strict):
    """Shared by the pass tables: turn the model back into MASE's flat TOML layout."""

    #: the field whose keys the user writes directly in the pass table (error messages name them so)
    flattened_field: ClassVar[str] = "entries"

    def to_mase_dict(self) -> dict[str, Any]:
        data = self.model_dump(exclude_none=True)
        entries = data.pop("entries", {})
        return {**data, **entries}


class QuantizePassConfig(_EntryTable):
    """``[passes.quantize]``: ``by`` = "type" | "name", a ``default`` entry and per-type/per-name entries."""

    by: Literal["type", "name"] = "type"
    default: QuantEntry = QuantEntry()
    report: bool = False
    beta: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """The weight of EBOPs in the training loss (models with ``learned`` quantizers): the constant, the start
    of a ramp, or the first value steered toward a target."""
    beta_end: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """A ramp: beta goes linearly from ``beta`` (epoch 0) to ``beta_end`` (epoch ``beta_epochs`` and after)."""
    beta_epochs: int | None = Field(default=None, ge=1)
    """The epochs of the ramp."""
    beta_target_ebops: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Steer beta toward a target: after each epoch it is multiplied by ``beta_factor`` while the model's
    EBOPs are above this, divided by it while below."""
    beta_factor: float = Field(default=2.0, gt=1, allow_inf_nan=False)
    """The factor of the steering."""
    entries: dict[str, QuantEntry] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect(cls, data: Any) -> Any:
        return _split_entries(data, ("by", "default", "report", *BETA_KEYS))

    @model_validator(mode="after")
    def _beta_schedule(self) -> QuantizePassConfig:
        """A ramp needs both its keys; a ramp and a target exclude each other; steering needs a beta > 0."""
        if (self.beta_end is None) != (self.beta_epochs is None):
            raise ValueError("a beta ramp needs both beta_end and beta_epochs")
        if self.beta_target_ebops is not None and self.beta_end is not None:
            raise ValueError("beta_target_ebops and beta_end exclude each other (a target or a ramp)")
        if self.beta_target_ebops is not None and self.beta <= 0:
            raise ValueError("beta_target_ebops steers beta by multiplying it: set beta > 0 as its first value")
        return self

    def to_mase_dict(self) -> dict[str, Any]:
        """This config as a plain MASE-layout dict (None for "NA"); it validates back to an equal config."""

        def entry(e: QuantEntry) -> dict[str, Any]:
            return {"config": {"name": e.config.name, **e.config.model_dump(exclude_none=True)}}

        out: dict[str, Any] = {"by": self.by, "default": entry(self.default)}
        if self.report:
            out["report"] = True
        defaults = type(self).model_fields
        out.update({k: getattr(self, k) for k in BETA_KEYS if getattr(self, k) != defaults[k].default})
        out.update({key: entry(e) for key, e in self.entries.items()})
        return out


class WidthPassConfig(_EntryTable):
    """``[passes.width]``: per-name (or per-type) channel width changes; ``init`` = net2net | random."""

    by: Literal["type", "name"] = "name"
    default: WidthEntry = WidthEntry()
    init: Literal["net2net", "random"] = "net2net"
    seed: int = 0
    entries: dict[str, WidthEntry] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect(cls, data: Any) -> Any:
        return _split_entries(data, ("by", "default", "init", "seed"))


class FoldBatchNormPassConfig(Strict):
    """``[passes.fold_batchnorm]``: fold every BatchNorm that follows a Linear or Conv into it (no keys)."""

    def to_mase_dict(self) -> dict[str, Any]:
        """This config as a plain dict (empty: the pass has no settings)."""
        return {}


class FreezeLearnedPassConfig(Strict):
    """``[passes.freeze_learned]``: every ``learned`` operand becomes the integer quantizer with its learned
    per-element formats (no keys)."""

    def to_mase_dict(self) -> dict[str, Any]:
        """This config as a plain dict (empty: the pass has no settings)."""
        return {}


def pass_config_error(exc: ValidationError, model: type[Strict], source: str) -> ConfigError:
    """A one-line ConfigError naming the dotted key as the user wrote it (no internal ``entries.``).

    A ``source`` such as ``passes.width`` is the table's own key and prefixes the keys named.
    """
    from netcarve.config.loader import describe_validation_error

    if source.startswith("passes."):
        return ConfigError(describe_validation_error(exc, model, "", prefix=source))
    return ConfigError(describe_validation_error(exc, model, source))


def prefixed_validation_error(exc: ValidationError, *prefix: str | int) -> ValidationError:
    """``exc`` with every error's location under ``prefix`` (e.g. the pass name inside ``[passes]``)."""
    details: list[Any] = []
    for err in exc.errors():
        detail: dict[str, Any] = {"type": err["type"], "loc": (*prefix, *err["loc"]), "input": err.get("input")}
        if "ctx" in err:
            detail["ctx"] = err["ctx"]
        details.append(detail)
    try:
        return ValidationError.from_exception_data(exc.title, details)
    except (KeyError, TypeError, ValueError):  # an error type pydantic cannot rebuild: keep the original
        return exc


M = TypeVar("M", bound=Strict)


def coerce_pass_config(model: type[M], config: M | Mapping[str, Any] | None, source: str) -> M:
    """A validated pass config from a config model, a MASE-layout dict ("NA" allowed) or None (defaults)."""
    from netcarve.config.loader import na_to_none

    if config is None:
        return model()
    if isinstance(config, model):
        return config
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source} must be a table (dict) or a {model.__name__}, got {type(config).__name__}")
    try:
        return model.model_validate(na_to_none(dict(config)))
    except ValidationError as exc:
        raise pass_config_error(exc, model, source) from exc
