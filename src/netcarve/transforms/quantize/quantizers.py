"""Quantizers: fake quantization with a clipped straight-through estimator, via the ``QUANTIZERS`` registry.

A quantizer turns one operand's settings (``width``, ``frac_width``, ``exponent_width``, ``exponent_bias``,
``round``, ``overflow``) into a validated :class:`QuantSpec`, and maps a float tensor onto that number grid,
returning floats.

Gradient (all quantizers): the **clipped straight-through estimator**. The gradient of the quantizer is 1
wherever the input lies inside the representable range ``[lo, hi]`` of the spec, bounds included, and 0
strictly outside it (where the forward saturates). Rounding itself is treated as the identity. With
``overflow = "wrap"`` the gradient is the same: 1 on [lo, hi], the inputs that map without wrapping (bounds
included), and 0 outside, where the forward wraps around (a wrapped value says nothing useful about the
direction of the input, so no gradient is passed).

- ``integer`` (alias ``fixed``): fixed point, value = k / 2^frac with integer k, rounded by ``round``
  (``nearest_even``, the default; ``nearest_up``; ``truncate``) and overflowed by ``overflow``
  (``saturate``, the default; ``wrap``): the one definition is :func:`netcarve.ir.fixedpoint.fixed_quantize`
  (README: Transform). ``frac_width`` None ⇒ ``width // 2``. A config's ``*_frac_width`` must lie in 0..width
  (:class:`~netcarve.config.passes.QuantLayerConfig`); called directly, the quantizer computes any
  ``frac_width`` (a negative one gives steps coarser than 1). ``frac_width = "auto"`` (weights and biases):
  the spec has ``auto_frac`` set and no ``frac_width``; every call takes the frac from the values it
  quantizes, :func:`netcarve.ir.fixedpoint.auto_frac` of their max |x| (one ``amax``), so during training it
  follows the weights, and the export (:meth:`QuantSpec.resolve` on the final weights) gets the frac of the
  last forward pass. Nothing is stored: the weights determine it, so a checkpoint reloads to the same frac.
- ``minifloat_ieee``: sign bit, ``exponent_width`` e bits, m = width − 1 − e mantissa bits,
  ``exponent_bias`` b (None ⇒ 2^(e−1) − 1). IEEE-like with subnormals, but no inf/NaN codes: every
  exponent code 1 … 2^e − 1 is a normal binade, code 0 holds the subnormals (spacing 2^(1−b−m)).
  Round half to even, saturate at ± the max normal (2 − 2^−m) · 2^(2^e − 1 − b). Unsigned operands are
  not special-cased (the sign bit is kept). The bias must leave some magnitude in [2^−24, 2^24]: the
  smallest subnormal 2^(1−b−m) ≤ 2^24 and the max normal ≥ 2^−24, i.e. −23 − m ≤ b ≤ 2^e + 23; any other
  bias rounds every value of ordinary size to zero or saturates it, and is a ConfigError. Only the default
  modes (``nearest_even``, ``saturate``); any other is a ConfigError.
- ``binary``: 1 bit, unscaled. Signed operands map x ≥ 0 → +1 and x < 0 → −1 (zero → +1), gradient on
  [−1, 1] (the usual hardtanh STE). Unsigned operands (ReLU inputs) use the 1-bit unsigned integer grid
  {0, 1} (round half to even: 0.5 → 0), gradient on [0, 1]. Only the default modes, like minifloat_ieee.

- ``learned`` (:mod:`netcarve.transforms.quantize.learned`): fixed point with a trainable frac per element,
  channel or layer and integer bits from the values' range (issue 22, HGQ); its state lives in the quantized
  module, and ``freeze_learned`` turns it into ``integer`` with per-element formats.

Which operands are unsigned is decided by the quantize pass (see ``netcarve.transforms.quantize.plan``).

**Per-element formats** (``integer`` only): a spec may carry :class:`ElementFormats`, a width and a frac
tensor broadcasting against the operand (weight ``(out, in)`` or ``(out, 1)`` per output channel, bias
``(out,)``, an activation per feature ``(features,)`` or per channel ``(C, 1, 1)``); the operand's sign and
modes stay one per operand. Width 0 is a pruned element: exactly 0, gradient 0. They are set by
:func:`netcarve.transforms.quantize.formats.set_formats` (the one way in, which a learned quantizer will use
too). The spec's ``width`` and ``frac_width`` are then the largest element width and frac (what
:meth:`QuantSpec.precision` reports); the tensors are the format.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from netcarve.config.passes import AUTO, DEFAULT_OVERFLOW, DEFAULT_ROUND
from netcarve.errors import ConfigError
from netcarve.ir.fakequant import fake_quant_scope
from netcarve.ir.fixedpoint import FixedGrid, auto_frac, check_modes, fixed_quantize, max_magnitude, scalar_grid
from netcarve.ir.meta import Precision
from netcarve.registry import Registry


@dataclass(frozen=True, eq=False)
class ElementFormats:
    """Fixed-point formats per element of one operand: integer ``width`` (≥ 0; 0 = pruned, exactly zero) and
    ``frac`` tensors (int64, CPU) broadcasting against the operand. Sign and modes are the spec's. Compared by
    identity (tensors have no single truth value)."""

    width: torch.Tensor
    frac: torch.Tensor
    #: the float64 grids of both signs, built (and checked) once here: a forward pass only converts them,
    #: which also runs under the analysis's fake tensors (no data-dependent check there)
    grids: dict[bool, FixedGrid] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        grids = {s: FixedGrid.of(self.width, self.frac, s, dtype=torch.float64) for s in (True, False)}
        object.__setattr__(self, "grids", grids)

    def grid(self, signed: bool, like: torch.Tensor) -> FixedGrid:
        """The grid of these formats in ``like``'s dtype and device (exact: powers of two and integers)."""
        base = self.grids[bool(signed)]
        return FixedGrid(
            *(
                torch.as_tensor(getattr(base, n)).to(dtype=like.dtype, device=like.device)
                for n in base.__dataclass_fields__
            )
        )

    def broadcast(self, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """(width, frac) broadcast to ``shape`` (the operand's, or one sample's for an activation)."""
        width, frac = torch.broadcast_tensors(self.width, self.frac)
        return width.broadcast_to(shape), frac.broadcast_to(shape)


@dataclass(frozen=True)
class QuantSpec:
    """One operand's validated quantization: the quantizer itself (no registry lookup per forward pass) and
    its parameters. ``quantizer.name`` is its registered name."""

    quantizer: Quantizer
    width: int
    frac_width: int | None = None
    exponent_width: int | None = None
    exponent_bias: int | None = None
    signed: bool = True
    round: str = DEFAULT_ROUND
    overflow: str = DEFAULT_OVERFLOW
    #: per-element formats (``integer`` only); None: ``width``/``frac_width`` hold for every element
    formats: ElementFormats | None = None
    #: ``frac_width = "auto"``: the frac comes from each tensor quantized (``frac_width`` is None)
    auto_frac: bool = False
    #: ``learned`` only: what one trainable frac covers (element, channel, layer)
    granularity: str | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer.quantize(x, self)

    def resolve(self, x: torch.Tensor) -> QuantSpec:
        """This spec as it quantizes ``x``: an ``auto_frac`` spec with the frac of ``x``'s range filled in
        (:func:`~netcarve.ir.fixedpoint.auto_frac`), any other spec itself."""
        if not self.auto_frac:
            return self
        frac = auto_frac(max_magnitude(x), self.width, self.signed)
        return dataclasses.replace(self, frac_width=frac, auto_frac=False)

    def bounds(self) -> tuple[float, float]:
        """The representable range [lo, hi]; the STE passes gradient only inside it (an ``auto_frac`` spec
        has none before :meth:`resolve`)."""
        return self.quantizer.bounds(self)

    def precision(self) -> Precision:
        """The operand's precision; per-element formats give their largest width and frac, their mean width
        and pruned share (``Precision.mean_width``, ``pruned_share``)."""
        mean = pruned = None
        if self.formats is not None:
            width, _ = torch.broadcast_tensors(self.formats.width, self.formats.frac)
            mean = float(width.double().mean())
            pruned = float((width == 0).double().mean())
        return Precision(
            self.quantizer.name, self.width, self.frac_width, self.exponent_width, self.exponent_bias,
            self.round, self.overflow, mean, pruned, self.auto_frac,
        )  # fmt: skip

    def describe(self, value: torch.Tensor | None = None) -> str:
        """E.g. ``integer(8,4)``, ``integer(8,4,trn,wrap)`` (non-default modes); unsigned operands get a ``u``
        prefix (``uinteger(8,4)``). An ``auto_frac`` spec is ``integer(3,auto)``, or with the ``value`` it
        quantizes ``integer(3,auto→4)`` (the frac it takes for that value)."""
        text = ("" if self.signed else "u") + self.precision().describe()
        if self.auto_frac and value is not None:
            text = text.replace(",auto", f",auto→{self.resolve(value).frac_width}", 1)
        return text


class Quantizer(Protocol):
    name: str
    #: whether it implements the round/overflow modes besides the defaults (nearest_even, saturate)
    modes: bool

    def make_spec(
        self,
        width: int,
        frac_width: int | str | None = None,
        exponent_width: int | None = None,
        exponent_bias: int | None = None,
        signed: bool = True,
        round: str = DEFAULT_ROUND,
        overflow: str = DEFAULT_OVERFLOW,
    ) -> QuantSpec:
        """Validate the settings and fill defaults; raises ConfigError."""
        ...

    def bounds(self, spec: QuantSpec) -> tuple[float, float]: ...

    def quantize(self, x: torch.Tensor, spec: QuantSpec) -> torch.Tensor: ...


QUANTIZERS: Registry[Quantizer] = Registry("quantizer")


def registered_quantizer(name: str) -> Quantizer:
    """The quantizer registered as ``name`` (or an alias); raises UnknownNameError."""
    return QUANTIZERS.get(name)


class RegisteredQuantizer:
    """Base of the quantizers: one stateless instance each, shared by every spec (a copy is that instance;
    a pickle refers to it by its registered name)."""

    name = ""
    modes = False

    def check_modes(self, round: str, overflow: str) -> None:
        """A ConfigError for an unknown mode, or a non-default one this quantizer does not implement."""
        check_modes(round, overflow, who=f"{self.name} quantizer", supported=self.modes)

    def __repr__(self) -> str:
        return f"<quantizer {self.name}>"

    def __copy__(self) -> RegisteredQuantizer:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RegisteredQuantizer:
        return self

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return registered_quantizer, (self.name,)


class _ClippedSTE(torch.autograd.Function):
    """Forward ``fn(x)``; backward: the incoming gradient where lo ≤ x ≤ hi, zero elsewhere."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], lo: float, hi: float) -> Any:
        ctx.save_for_backward((x >= lo) & (x <= hi))
        with torch.no_grad():
            return fn(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None


def fake_quantize(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], lo: float, hi: float) -> torch.Tensor:
    """``fn(x)`` forward, clipped straight-through gradient on [lo, hi]."""
    with fake_quant_scope():
        return _ClippedSTE.apply(x, fn, lo, hi)


class IntegerQuantizer(RegisteredQuantizer):
    """Fixed point k / 2^frac: round (half to even, half up or truncate), then saturate or wrap."""

    name = "integer"
    modes = True

    def make_spec(
        self,
        width: int,
        frac_width: int | str | None = None,
        exponent_width: int | None = None,
        exponent_bias: int | None = None,
        signed: bool = True,
        round: str = DEFAULT_ROUND,
        overflow: str = DEFAULT_OVERFLOW,
    ) -> QuantSpec:
        self.check_modes(round, overflow)
        if frac_width == AUTO:
            scalar_grid(width, width // 2, signed)  # checks the width
            return QuantSpec(self, width, None, signed=signed, round=round, overflow=overflow, auto_frac=True)
        if isinstance(frac_width, str):
            raise ConfigError(f'integer quantizer: frac_width must be an integer or "auto", got {frac_width!r}')
        frac = width // 2 if frac_width is None else frac_width
        scalar_grid(width, frac, signed)  # checks the width
        return QuantSpec(self, width, frac, signed=signed, round=round, overflow=overflow)

    def bounds(self, spec: QuantSpec) -> tuple[float, float]:
        """The representable range; with per-element formats, the widest over the elements not pruned."""
        if spec.formats is not None:
            grid = spec.formats.grid(spec.signed, torch.zeros((), dtype=torch.float64))
            lo, hi = torch.as_tensor(grid.lo), torch.as_tensor(grid.hi)
            alive = ~torch.isnan(lo)
            return (float(lo[alive].min()), float(hi[alive].max())) if bool(alive.any()) else (0.0, 0.0)
        if spec.auto_frac:
            raise ValueError(f"{spec.describe()}: the bounds depend on the values (resolve the spec first)")
        grid = scalar_grid(spec.width, spec.frac_width or 0, spec.signed)
        return float(grid.lo), float(grid.hi)

    def quantize(self, x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
        if spec.formats is not None:
            return fixed_quantize(x, spec.formats.grid(spec.signed, x), spec.round, spec.overflow)
        frac = auto_frac(max_magnitude(x), spec.width, spec.signed) if spec.auto_frac else spec.frac_width or 0
        return fixed_quantize(x, scalar_grid(spec.width, frac, spec.signed), spec.round, spec.overflow)


class MinifloatIEEEQuantizer(RegisteredQuantizer):
    """IEEE-like minifloat with subnormals, no inf/NaN codes, saturating at the max normal."""

    name = "minifloat_ieee"

    def make_spec(
        self,
        width: int,
        frac_width: int | str | None = None,
        exponent_width: int | None = None,
        exponent_bias: int | None = None,
        signed: bool = True,
        round: str = DEFAULT_ROUND,
        overflow: str = DEFAULT_OVERFLOW,
    ) -> QuantSpec:
        self.check_modes(round, overflow)
        if exponent_width is None:
            raise ConfigError("minifloat_ieee quantizer needs an exponent_width")
        if not 1 <= exponent_width <= 11:
            raise ConfigError(f"minifloat_ieee: exponent_width must be in 1..11, got {exponent_width}")
        if width < exponent_width + 1:
            raise ConfigError(
                f"minifloat_ieee: width {width} has no room for a sign and {exponent_width} exponent bits"
            )
        bias = 2 ** (exponent_width - 1) - 1 if exponent_bias is None else exponent_bias
        spec = QuantSpec(self, width, None, exponent_width, bias, signed)
        m = width - 1 - exponent_width
        lowest, highest = -23 - m, 2**exponent_width + 23  # the biases with a magnitude in [2^-24, 2^24]
        if not lowest <= bias <= highest:
            tiny = f"2^{1 - bias - m}"
            top = f"{self.max_value(spec):.4g}" if self.max_value(spec) < math.inf else "≥ 2^1024"
            raise ConfigError(
                f"minifloat_ieee: exponent_bias {bias} (exponent_width {exponent_width}, {m} mantissa bits) "
                f"represents magnitudes from {tiny} to {top}, none of them in [2^-24, 2^24], so every value "
                f"would round to zero or saturate; use an exponent_bias in {lowest}..{highest}"
            )
        return spec

    @staticmethod
    def _layout(spec: QuantSpec) -> tuple[int, int, int]:
        """(mantissa bits m, min exponent 1 − b, max exponent 2^e − 1 − b)."""
        e, b = int(spec.exponent_width or 0), int(spec.exponent_bias or 0)
        return spec.width - 1 - e, 1 - b, 2**e - 1 - b

    def max_value(self, spec: QuantSpec) -> float:
        """The largest normal (2 − 2^−m) · 2^e_max; inf beyond float64 (then no float input saturates)."""
        m, _, e_max = self._layout(spec)
        return math.ldexp(2.0 - 2.0**-m, e_max) if e_max < 1024 else math.inf

    def bounds(self, spec: QuantSpec) -> tuple[float, float]:
        top = self.max_value(spec)
        return -top, top

    def quantize(self, x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
        m, e_min, _ = self._layout(spec)
        top = self.max_value(spec)

        def fn(t: torch.Tensor) -> torch.Tensor:
            mag = t.abs().double()  # float64: exact for every step of formats up to 11 exponent bits
            _, exp = torch.frexp(mag)  # mag = f · 2^exp with f in [0.5, 1)
            step = torch.ldexp(torch.ones_like(mag), (exp - 1).clamp(min=e_min) - m)
            q = torch.clamp(torch.round(mag / step) * step, max=top)
            return torch.copysign(q, t.double()).to(t.dtype)

        return fake_quantize(x, fn, -top, top)


class BinaryQuantizer(RegisteredQuantizer):
    """1 bit, unscaled: ±1 by sign (zero → +1); unsigned operands {0, 1} by rounding."""

    name = "binary"

    def make_spec(
        self,
        width: int,
        frac_width: int | str | None = None,
        exponent_width: int | None = None,
        exponent_bias: int | None = None,
        signed: bool = True,
        round: str = DEFAULT_ROUND,
        overflow: str = DEFAULT_OVERFLOW,
    ) -> QuantSpec:
        self.check_modes(round, overflow)
        if width != 1:
            raise ConfigError(f"binary quantizer stores 1 bit: set the operand's width to 1 (got {width})")
        return QuantSpec(self, 1, signed=signed)

    def bounds(self, spec: QuantSpec) -> tuple[float, float]:
        return (-1.0, 1.0) if spec.signed else (0.0, 1.0)

    def quantize(self, x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
        def bipolar(t: torch.Tensor) -> torch.Tensor:
            return torch.where(t >= 0, 1.0, -1.0).to(t.dtype)

        def unipolar(t: torch.Tensor) -> torch.Tensor:
            return torch.clamp(torch.round(t), 0, 1)

        lo, hi = self.bounds(spec)
        return fake_quantize(x, bipolar if spec.signed else unipolar, lo, hi)


QUANTIZERS.add("integer", IntegerQuantizer(), aliases=("fixed",), description=IntegerQuantizer.__doc__ or "")
QUANTIZERS.add("minifloat_ieee", MinifloatIEEEQuantizer(), description=MinifloatIEEEQuantizer.__doc__ or "")
QUANTIZERS.add("binary", BinaryQuantizer(), description=BinaryQuantizer.__doc__ or "")
