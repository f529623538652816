"""The integer (fixed-point) quantizer: its one definition, its modes' names in the backends, and the one
check of those modes.

:func:`fixed_quantize` is the quantizer (:func:`fixed_values` its forward alone, without a gradient). The
fake-quantized modules (``integer`` in :mod:`netcarve.transforms.quantize.quantizers`) and batched population
training (:mod:`netcarve.train.population`) call the first, the export's exact reference
(:meth:`netcarve.export.program.FixedFormat.quantize`) the second; nothing else computes it.

**Format** (:class:`FixedGrid`, built by :meth:`FixedGrid.of` from width w, frac f and sign s). Each of w,
f, s is a Python number (one format for the whole tensor) or a tensor that broadcasts against the values (a
format per channel, per member of a population, or per element). A value is k · 2^−f with k an integer in
[lo, hi] = [−2^(w−1), 2^(w−1) − 1] (signed) or [0, 2^w − 1] (unsigned). A negative f gives steps coarser
than 1. **Width 0** (tensor formats only: a per-element format, where it means the element is pruned) is
exactly 0: k ∈ [0, 0] whatever the sign, and the representable range is empty (lo = hi = NaN), so the
gradient there is 0 too. A scalar width must be ≥ 1 (a whole tensor of zeros is no quantizer).

**Round** (how x · 2^f becomes k; the names are :data:`netcarve.config.passes.ROUND_MODES`):
``nearest_even`` k = round half to even (the default), ``nearest_up`` k = floor(x · 2^f + ½) (half up),
``truncate`` k = floor(x · 2^f). **Overflow**: ``saturate`` clamps k to [lo, hi] (the default), ``wrap``
maps k ↦ ((k − lo) mod 2^w) + lo (two's complement). Round and overflow modes are one per call: they choose
the ops (a format that mixes modes is quantized in one call per mode).

**Gradient**: the clipped straight-through estimator: the incoming gradient wherever lo · 2^−f ≤ x ≤
hi · 2^−f (bounds included), 0 outside (where the forward saturates or wraps) and at NaN; rounding is
treated as the identity.

Everything is exact in floating point while |k| < 2^24 (float32) or 2^53 (float64): the scaling by 2^±f is
exact, and so are rounding, clamping and the modulus of integers.

**Range-aware frac** (``frac_width = "auto"``, :func:`auto_frac`): the frac is chosen from the width and the
largest magnitude m of the values being quantized, so that the grid covers them with the fewest integer bits:
f is the largest integer with m · 2^f ≤ k_top, where k_top = k_hi (2^(w−1) − 1 signed, 2^w − 1 unsigned), or 1
for a signed 1-bit grid (k_hi = 0: its one nonzero value −2^−f covers m by magnitude). Every value then lies
in [lo, hi]: none saturates, so the straight-through gradient reaches every one, and the largest lands within
a factor 2 of hi. m = 0 (or not finite) gives the fixed default ``w // 2``; f is clamped to
±:data:`AUTO_FRAC_LIMIT`. The integer bits without the sign are w − 1 − f (signed) or w − f (unsigned), and may
be negative (f > w). m is an exact float, so the same values give the same f in float32 and float64.

**Learned formats** (the ``learned`` quantizer's arithmetic, :func:`range_format`, :func:`learned_quantize`,
:func:`learned_bits`; its one home, called by the quantized module's learned operand
(:mod:`netcarve.transforms.quantize.learned`, whose docstring defines it) and by the population's batched one
(:mod:`netcarve.train.population.quant`)): a trainable float frac per group, f = round(frac) clamped to
±:data:`AUTO_FRAC_LIMIT`, the width the fewest bits that hold the group's range [lo, hi] at f (0: pruned), the
value's gradient the straight-through one and the frac's HGQ's surrogate −ln 2 · (q(x) − x).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from netcarve.config.passes import DEFAULT_OVERFLOW, DEFAULT_ROUND, OVERFLOW_MODES, ROUND_MODES
from netcarve.errors import ConfigError
from netcarve.ir.fakequant import fake_quant_scope
from netcarve.ir.fused import kernel

#: a format parameter: one number for the tensor, or a tensor broadcasting against it
Param = float | torch.Tensor

#: round mode → how x · 2^f becomes an integer (the keys are ``ROUND_MODES``)
ROUNDING: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "nearest_even": torch.round,
    "nearest_up": lambda t: torch.floor(t + 0.5),
    "truncate": torch.floor,
}

#: each mode's name in each backend: hls4ml's ap_fixed quantization and overflow modes, alkaid's round and
#: overflow modes (da4ml's names, which alkaid kept). None: the backend has no such mode (alkaid's round half to
#: even is built from TRN and one adder, see ``netcarve.export.alkaid``)
ROUND_NAMES: dict[str, dict[str, str | None]] = {
    "nearest_even": {"hls4ml": "AP_RND_CONV", "alkaid": None},
    "nearest_up": {"hls4ml": "AP_RND", "alkaid": "RND"},
    "truncate": {"hls4ml": "AP_TRN", "alkaid": "TRN"},
}
OVERFLOW_NAMES: dict[str, dict[str, str | None]] = {
    "saturate": {"hls4ml": "AP_SAT", "alkaid": "SAT"},
    "wrap": {"hls4ml": "AP_WRAP", "alkaid": "WRAP"},
}


def backend_modes(backend: str) -> tuple[dict[str, str], dict[str, str]]:
    """``backend``'s names of the round modes and of the overflow modes it has natively (netcarve's mode →
    the backend's name)."""
    rounds = {mode: names[backend] for mode, names in ROUND_NAMES.items() if names[backend] is not None}
    overflows = {mode: names[backend] for mode, names in OVERFLOW_NAMES.items() if names[backend] is not None}
    return rounds, overflows  # type: ignore[return-value]


def check_modes(round: str, overflow: str, *, who: str, supported: bool = True, key: str = "") -> None:
    """A ConfigError for an unknown mode, or (``supported`` False: a quantizer without the modes) a mode other
    than the default. ``who`` starts the message; ``key`` (e.g. ``weight_``) names the setting as the user
    wrote it (``weight_round``)."""
    for what, value, allowed, default in (
        ("round", round, ROUND_MODES, DEFAULT_ROUND),
        ("overflow", overflow, OVERFLOW_MODES, DEFAULT_OVERFLOW),
    ):
        if value not in allowed:
            raise ConfigError(f"{who}: unknown {key}{what} mode {value!r} (valid: {', '.join(allowed)})")
        if value != default and not supported:
            raise ConfigError(
                f"{who}: {key}{what} = {value!r} is not supported (only {default!r}); "
                "round/overflow modes apply to the integer (fixed-point) quantizer"
            )


def int_range(width: int, signed: bool) -> tuple[int, int]:
    """The integer range [lo, hi] of a ``width``-bit k: two's complement when ``signed``."""
    if signed:
        return -(2 ** (width - 1)), 2 ** (width - 1) - 1
    return 0, 2**width - 1


@dataclass(frozen=True)
class FixedGrid:
    """A fixed-point format ready to quantize with (derived once from width, frac and sign by :meth:`of`):
    each field a float, or a tensor broadcasting against the values."""

    #: 2^f and 2^−f
    scale: Param
    step: Param
    #: the integer range [k_lo, k_hi] and its size 2^w
    k_lo: Param
    k_hi: Param
    span: Param
    #: the representable range [lo, hi] = [k_lo, k_hi] · 2^−f, where the gradient passes (NaN where the
    #: width is 0: no value passes)
    lo: Param
    hi: Param

    @staticmethod
    def of(
        width: int | torch.Tensor,
        frac: int | torch.Tensor,
        signed: bool | torch.Tensor = True,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> FixedGrid:
        """The grid of ``width`` bits, ``frac`` of them fractional (scalars, or tensors of the shape the
        values broadcast against: per channel, per element). Scalars give floats; any tensor gives tensors of
        ``dtype`` (every field broadcast to one shape)."""
        if not any(isinstance(p, torch.Tensor) for p in (width, frac, signed)):
            w, f = int(width), int(frac)
            if w < 1:
                raise ConfigError(f"integer quantizer: width must be ≥ 1, got {w}")
            lo, hi = int_range(w, bool(signed))
            return FixedGrid(2.0**f, 2.0**-f, float(lo), float(hi), 2.0**w, lo * 2.0**-f, hi * 2.0**-f)
        w_t, f_t, s_t = torch.broadcast_tensors(
            *(torch.as_tensor(p, device=device).to(torch.float64) for p in (width, frac, signed))
        )
        if bool((w_t < 0).any()) or bool((w_t != w_t.round()).any()) or bool((f_t != f_t.round()).any()):
            raise ConfigError("integer quantizer: widths must be integers ≥ 0 and frac widths integers")
        return FixedGrid._fields(w_t, f_t, s_t != 0).cast(dtype)

    @staticmethod
    def of_integers(width: torch.Tensor, frac: torch.Tensor, signed: bool) -> FixedGrid:
        """:meth:`of` for formats already known to be integers (width ≥ 0), as float tensors of the values'
        dtype (the learned quantizer's, computed every step): no checks, no conversions. The same fields as
        :meth:`of` bit for bit while |f| ≤ 64: every field is a power of two, or 2^(w−1) − 1 / 2^w − 1 and a
        power-of-two multiple of it, each one rounding of the exact value in either dtype."""
        w_t, f_t = torch.broadcast_tensors(width, frac)
        return FixedGrid._fields(w_t, f_t, signed)

    @staticmethod
    def _fields(w_t: torch.Tensor, f_t: torch.Tensor, signed: torch.Tensor | bool) -> FixedGrid:
        """The grid of integer-valued ``w_t``/``f_t`` (one shape), computed in their dtype; ``signed`` per
        element or one for all."""
        span, half = torch.exp2(w_t), torch.exp2(w_t - 1)
        pruned = w_t == 0  # k in [0, 0] (span 1: wrapping maps every k to 0 too); no range, so no gradient
        zero = torch.zeros_like(half)
        if isinstance(signed, bool):
            k_lo = torch.where(pruned, zero, -half) if signed else zero
            k_hi = torch.where(pruned, zero, half - 1 if signed else span - 1)
        else:
            k_lo = torch.where(signed & ~pruned, -half, zero)
            k_hi = torch.where(pruned, zero, torch.where(signed, half - 1, span - 1))
        scale, step = torch.exp2(f_t), torch.exp2(-f_t)
        empty = torch.full_like(half, torch.nan)
        lo_t, hi_t = torch.where(pruned, empty, k_lo * step), torch.where(pruned, empty, k_hi * step)
        return FixedGrid(scale, step, k_lo, k_hi, span, lo_t, hi_t)

    def cast(self, dtype: torch.dtype) -> FixedGrid:
        """Every tensor field in ``dtype``."""
        return FixedGrid(*(getattr(self, n).to(dtype) for n in self.__dataclass_fields__))

    def select(self, index: torch.Tensor) -> FixedGrid:
        """The rows ``index`` (dim 0) of every tensor field (e.g. the members left in a population)."""

        def pick(v: Param) -> Param:
            return v.index_select(0, index) if isinstance(v, torch.Tensor) else v

        return FixedGrid(*(pick(getattr(self, name)) for name in self.__dataclass_fields__))


#: the range of an automatic frac: 2^±64 keeps the scale a normal float32 for any width up to 64
AUTO_FRAC_LIMIT = 64


def auto_frac(m: float, width: int, signed: bool) -> int:
    """The range-aware frac of a ``width``-bit grid for values of largest magnitude ``m`` (module docstring):
    the largest f with m · 2^f ≤ k_top; ``width // 2`` when m is 0 or not finite. Exact (powers of two by
    ``math.ldexp``), so a float32 and a float64 copy of the same values give the same f."""
    if not (math.isfinite(m) and m > 0):
        return width // 2
    k_top = max(int_range(width, signed)[1], 1)
    f = math.floor(math.log2(k_top) - math.log2(m))  # a guess within 1 of the answer; made exact below
    while math.ldexp(m, f) > k_top:
        f -= 1
    while math.ldexp(m, f + 1) <= k_top:
        f += 1
    return max(-AUTO_FRAC_LIMIT, min(AUTO_FRAC_LIMIT, f))


def max_magnitude(x: torch.Tensor) -> float:
    """max |x| as an exact Python float (0.0 for an empty tensor): the m of :func:`auto_frac`."""
    if x.numel() == 0:
        return 0.0
    with torch.no_grad():
        return float(x.detach().abs().amax())


@functools.cache
def scalar_grid(width: int, frac: int, signed: bool = True) -> FixedGrid:
    """:meth:`FixedGrid.of` one format for the whole tensor, cached (the grid of a quantizer spec)."""
    return FixedGrid.of(width, frac, signed)


def fixed_values(
    x: torch.Tensor, grid: FixedGrid, round: str = DEFAULT_ROUND, overflow: str = DEFAULT_OVERFLOW
) -> torch.Tensor:
    """The forward of :func:`fixed_quantize` alone: ``x`` on ``grid`` without a gradient (the export's exact
    reference, where no gradient is wanted and the STE's mask would be wasted work)."""
    return _fixed_forward(x, grid, ROUNDING[round], overflow == "wrap")


def _fixed_forward(
    x: torch.Tensor, grid: FixedGrid, rounding: Callable[[torch.Tensor], torch.Tensor], wrap: bool
) -> torch.Tensor:
    k = rounding(x * grid.scale)
    k = torch.remainder(k - grid.k_lo, grid.span) + grid.k_lo if wrap else torch.clamp(k, grid.k_lo, grid.k_hi)  # type: ignore[arg-type]
    return k * grid.step


#: the fused kernel's code of each round mode (``csrc/fixed_quantize.cpp``)
_ROUND_CODES = {"nearest_even": 0, "nearest_up": 1, "truncate": 2}
_GRID_FIELDS = ("scale", "step", "k_lo", "k_hi", "span", "lo", "hi")
_FUSED_DTYPES = (torch.float32, torch.float64)


#: scalar grid fields as 0-dim tensors, by (value, dtype): plain tensors only, never written to
_SCALARS: dict[tuple[float, torch.dtype], torch.Tensor] = {}
#: what the kernel takes: plain tensors and parameters (not fake, functional or other subclasses)
_PLAIN = (torch.Tensor, torch.nn.Parameter)


def _scalar_tensor(value: float, dtype: torch.dtype) -> torch.Tensor | None:
    """A scalar grid field as a 0-dim tensor of ``dtype``; None when it does not fit (the op chain raises)."""
    key = (value, dtype)
    found = _SCALARS.get(key)
    if found is None:
        found = torch.tensor(value, dtype=dtype)
        if type(found) is not torch.Tensor:  # made under a fake-tensor mode: not a value the kernel can read
            return None
        if math.isfinite(value) and not bool(torch.isfinite(found)):
            return None
        _SCALARS[key] = found
    return found


def _fused_fields(x: torch.Tensor, grid: FixedGrid) -> list[torch.Tensor] | None:
    """The grid's fields as plain tensors of ``x``'s dtype for the fused kernel, or None when the kernel cannot
    take them as the op chain would (another device or dtype, which the chain would promote to, a grid that
    broadcasts ``x`` to a larger shape, a scalar that does not fit the dtype, a fake-tensor mode)."""
    if type(torch.empty(0)) is not torch.Tensor:  # a fake-tensor mode is active: its tensors have no data
        return None
    fields: list[torch.Tensor] = []
    shapes = []
    for name in _GRID_FIELDS:
        value = getattr(grid, name)
        if isinstance(value, torch.Tensor):
            if type(value) not in _PLAIN or value.device.type != "cpu" or value.dtype != x.dtype:
                return None
            fields.append(value)
            shapes.append(value.shape)
        else:
            scalar = _scalar_tensor(float(value), x.dtype)
            if scalar is None:
                return None
            fields.append(scalar)
    if any(not _fits(shape, x.shape) for shape in set(shapes)):
        return None
    return fields


def _fits(shape: torch.Size, into: torch.Size) -> bool:
    """Whether ``shape`` broadcasts against ``into`` without enlarging it (``torch.broadcast_shapes(into,
    shape) == into``, which takes 30 µs a call, longer than the kernel on a population's small activations)."""
    if len(shape) > len(into):
        return False
    return all(s == 1 or s == t for s, t in zip(reversed(shape), reversed(into), strict=False))


class _FixedSTE(torch.autograd.Function):
    """Forward: the quantizer; backward: the incoming gradient where lo ≤ x ≤ hi. ``clamp(x, lo, hi) == x``
    is lo ≤ x ≤ hi in two ops (False at NaN, like the comparisons, and where lo and hi are NaN: width 0);
    multiplying k by 2^−f is dividing by 2^f (both exact). On CPU float32/float64 values the forward and the
    mask are one fused pass when its kernel is built (:mod:`netcarve.ir.fused`: the same operations per
    element, bit for bit; its mask is 1 or 0 in the values' dtype, which makes the backward's product 4-5x
    faster than one with a bool mask and gives the same gradient)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, grid: FixedGrid, round: str, wrap: bool, grad: bool) -> Any:
        if type(x) in _PLAIN and x.device.type == "cpu" and x.dtype in _FUSED_DTYPES:  # not a fake tensor
            op = kernel()
            fields = _fused_fields(x, grid) if op is not None else None
            if op is not None and fields is not None:
                # grad False (no gradient recorded: nothing will take one): no mask
                out, inside = op.fixed_quantize(x, *fields, _ROUND_CODES[round], wrap, grad)
                if grad:
                    ctx.save_for_backward(inside)
                return out
        ctx.save_for_backward(torch.clamp(x, grid.lo, grid.hi) == x)  # type: ignore[arg-type]
        with torch.no_grad():
            return _fixed_forward(x, grid, ROUNDING[round], wrap)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def fixed_quantize(
    x: torch.Tensor, grid: FixedGrid, round: str = DEFAULT_ROUND, overflow: str = DEFAULT_OVERFLOW
) -> torch.Tensor:
    """``x`` on ``grid``, rounded by ``round`` and overflowed by ``overflow`` (floats of ``x``'s dtype),
    with the clipped straight-through gradient. The modes must be valid (:func:`check_modes`)."""
    with fake_quant_scope():
        # whether a gradient is recorded: inside apply, needs_input_grad is True under no_grad too
        grad = torch.is_grad_enabled() and x.requires_grad
        out: torch.Tensor = _FixedSTE.apply(x, grid, round, overflow == "wrap", grad)
    return out


# -- the learned quantizer's arithmetic (module docstring) ----------------------------------------------------
LN2 = math.log(2.0)


def bits_of_integer(n: torch.Tensor) -> torch.Tensor:
    """⌈log2(n + 1)⌉ for integers n ≥ 0 (0 for n ≤ 0), exactly: frexp's exponent of n."""
    return torch.frexp(torch.clamp(n, min=0))[1].to(n.dtype)


def range_format(
    lo: torch.Tensor, hi: torch.Tensor, frac: torch.Tensor, round: str, signed: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(width, f) per group, integer-valued floats of the range's dtype: f = round(``frac``) within
    ±AUTO_FRAC_LIMIT; k_hi = round(hi · 2^f), k_lo = round(lo · 2^f) (``round``'s mode); the width is the fewest
    bits holding both: signed 1 + max(bits(k_hi), bits(−k_lo − 1)) (0 when k_hi ≤ 0 ≤ k_lo: every value
    rounds to 0), unsigned bits(k_hi). Exact in float32: the scaling by 2^f and the rounding are exact."""
    f = torch.round(frac.detach()).to(hi.dtype).clamp(-AUTO_FRAC_LIMIT, AUTO_FRAC_LIMIT)
    rounding = ROUNDING[round]
    scale = torch.exp2(f)
    k_hi, k_lo = rounding(hi * scale), rounding(lo * scale)
    if not signed:
        return bits_of_integer(k_hi), f
    width = 1 + torch.maximum(bits_of_integer(k_hi), bits_of_integer(-k_lo - 1))
    return torch.where((k_hi > 0) | (k_lo < 0), width, torch.zeros_like(width)), f


def learned_quantize(x: torch.Tensor, grid: FixedGrid, frac: torch.Tensor, round: str, overflow: str) -> torch.Tensor:
    """``x`` on ``grid`` (the formats of :func:`range_format`) by :func:`fixed_quantize`; while a gradient is
    recorded and ``frac`` trains, plus ``(frac − frac.detach()) · (−ln 2 · δ)`` with δ = q − x: exactly 0,
    the frac's surrogate gradient (summed over each group by broadcasting)."""
    q = fixed_quantize(x, grid, round, overflow)
    if torch.is_grad_enabled() and frac.requires_grad:
        delta = (q - x).detach()
        q = q + (frac - frac.detach()).to(x.dtype) * (-LN2 * delta)
    return q


def learned_bits(width: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """The bits per group for EBOPs: the integer ``width`` as value, gradient 1 to ``frac``; 0 (no gradient)
    where pruned."""
    width = width.to(frac.dtype)
    return torch.where(width > 0, width + (frac - frac.detach()), torch.zeros_like(width))
