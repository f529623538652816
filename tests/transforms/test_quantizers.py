"""Quantizers: bit-exact against a pure-integer reference, golden values, STE gradients, registry contract."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from netcarve.errors import ConfigError
from netcarve.transforms.quantize.quantizers import QUANTIZERS, QuantSpec


def reference_integer(x: float, width: int, frac: int, signed: bool) -> Fraction:
    """Pure integer arithmetic: k = x·2^frac rounded half to even, clamped; value k / 2^frac."""
    v = Fraction(x) * Fraction(2) ** frac
    k, r = divmod(v.numerator, v.denominator)  # floor division: 0 ≤ r < denominator
    if 2 * r > v.denominator or (2 * r == v.denominator and k % 2 == 1):
        k += 1
    lo, hi = (-(2 ** (width - 1)), 2 ** (width - 1) - 1) if signed else (0, 2**width - 1)
    return Fraction(min(max(k, lo), hi)) / Fraction(2) ** frac


def _inputs(width: int, frac: int, seed: int) -> torch.Tensor:
    """Random values over 1.5× the representable range, and every exact tie (k + ½)/2^frac near both ends."""
    g = torch.Generator().manual_seed(seed)
    span = 2.0 ** (width - frac)
    rand = (torch.rand(300, generator=g) * 2 - 1) * span * 0.75
    k_hi = 2 ** (width - 1)
    ties = [(k + 0.5) / 2.0**frac for k in [*range(-5, 5), k_hi - 2, k_hi - 1, k_hi, -k_hi - 1, -k_hi, 2 * k_hi - 1]]
    return torch.cat([rand, torch.tensor(ties, dtype=torch.float32)])


@pytest.mark.parametrize("width", range(2, 17))
@pytest.mark.parametrize("signed", [True, False])
def test_integer_matches_pure_integer_reference(width: int, signed: bool) -> None:
    quantizer = QUANTIZERS.get("integer")
    for frac in sorted({0, 1, width // 2, width - 1, width + 3, -2}):
        spec = quantizer.make_spec(width, frac, signed=signed)
        x = _inputs(width, frac, seed=width * 31 + frac)
        got = spec(x)
        assert got.dtype == torch.float32
        for xi, yi in zip(x.tolist(), got.tolist(), strict=True):
            assert Fraction(yi) == reference_integer(xi, width, frac, signed), (width, frac, signed, xi)


def test_integer_ties_round_half_to_even_and_saturate() -> None:
    """width 4, frac 1 (step ½, signed range [−4, 3.5]): 0.25 → 0, 0.75 → 1.0, 1.25 → 1.0, −0.25 → 0,
    3.75 → 3.5 (saturated, not 4.0), −5 → −4. Unsigned [0, 7.5]: −1 → 0, 3.75 → 4.0, 9 → 7.5."""
    signed = QUANTIZERS.get("integer").make_spec(4, 1)
    x = torch.tensor([0.25, 0.75, 1.25, -0.25, 3.75, -5.0])
    assert signed(x).tolist() == [0.0, 1.0, 1.0, 0.0, 3.5, -4.0]
    unsigned = QUANTIZERS.get("fixed").make_spec(4, 1, signed=False)
    assert unsigned(torch.tensor([-1.0, 3.75, 9.0])).tolist() == [0.0, 4.0, 7.5]


def test_integer_frac_defaults_to_half_the_width() -> None:
    assert QUANTIZERS.get("integer").make_spec(8).frac_width == 4
    assert QUANTIZERS.get("integer").make_spec(7).frac_width == 3


def test_minifloat_golden_values() -> None:
    """width 8, exponent 4, bias 7 (default 2^3−1), m = 3 mantissa bits. Normal binades 2^−6 … 2^8,
    max normal (2 − 2^−3)·2^8 = 480, subnormal step 2^(1−7−3) = 2^−9 = 0.001953125.
    1.1 in [1, 2), step 1/8: 8.8 → 9 → 1.125. 1.0625 = 8.5 steps → tie → 8 → 1.0; 1.1875 = 9.5 → 10 → 1.25.
    −3.3 in [2, 4), step ¼: 13.2 → 13 → −3.25. 470 in [256, 512), step 32: 14.69 → 15 → 480.
    500 → 15.6 → 16 → 512 → saturates to 480; ±1000 → ±480. Subnormals: 0.003 / 2^−9 = 1.536 → 2 → 2^−8;
    0.0009 → 0.46 → 0; 0.0029296875 = 1.5·2^−9 → tie → 2 → 2^−8; 0.001 → 0.512 → 1 → 2^−9.
    0.015 → 7.68 → 8 → 2^−6 (rounds up into the normal range)."""
    spec = QUANTIZERS.get("minifloat_ieee").make_spec(8, exponent_width=4)
    assert spec.exponent_bias == 7
    cases = {
        1.0: 1.0, 1.1: 1.125, 1.0625: 1.0, 1.1875: 1.25, -3.3: -3.25, 470.0: 480.0, 500.0: 480.0,
        1000.0: 480.0, -1000.0: -480.0, 0.003: 2**-8, 0.0009: 0.0, 0.0029296875: 2**-8, 0.001: 2**-9,
        0.015: 2**-6, 0.0: 0.0,
    }  # fmt: skip
    got = spec(torch.tensor(list(cases), dtype=torch.float32)).tolist()
    assert got == list(cases.values())


def test_minifloat_explicit_bias_golden_values() -> None:
    """width 6, exponent 3, bias 1, m = 2: exponents 0 … 6, max (2 − ¼)·2^6 = 112, subnormal step 2^(0−2) = ¼.
    0.1 → 0.4 steps → 0; 0.2 → 0.8 → 1 → 0.25; 0.375 → 1.5 → tie → 2 → 0.5; −5 in [4, 8), step 1 → −5;
    100 in [64, 128), step 16: 6.25 → 6 → 96; 120 → 7.5 → tie → 8 → 128 → saturates to 112."""
    spec = QUANTIZERS.get("minifloat_ieee").make_spec(6, exponent_width=3, exponent_bias=1)
    got = spec(torch.tensor([0.1, 0.2, 0.375, -5.0, 100.0, 120.0])).tolist()
    assert got == [0.0, 0.25, 0.5, -5.0, 96.0, 112.0]


def test_binary_golden_values() -> None:
    """Signed: x ≥ 0 → +1 (zero too), x < 0 → −1. Unsigned: {0, 1} by round half to even (0.5 → 0)."""
    signed = QUANTIZERS.get("binary").make_spec(1)
    assert signed(torch.tensor([-2.0, -0.5, 0.0, 0.3, 5.0])).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]
    unsigned = QUANTIZERS.get("binary").make_spec(1, signed=False)
    assert unsigned(torch.tensor([-1.0, 0.3, 0.5, 0.6, 2.0])).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


def _grad(spec: QuantSpec, values: list[float]) -> list[float]:
    x = torch.tensor(values, requires_grad=True)
    spec(x).sum().backward()
    assert x.grad is not None
    return x.grad.tolist()


def test_ste_gradient_is_one_inside_the_range_and_zero_outside() -> None:
    """Clipped STE: gradient 1 on [lo, hi] (bounds included), 0 strictly outside.
    integer(4, 2) signed: [−2, 1.75]; 1.8 would round to 1.75 but lies outside, so its gradient is 0.
    integer(4, 2) unsigned: [0, 3.75]. minifloat(8, e4): [−480, 480]. binary: [−1, 1]; unsigned [0, 1]."""
    integer = QUANTIZERS.get("integer")
    assert _grad(integer.make_spec(4, 2), [-3, -2, -1.1, 0, 1.75, 1.8, 3]) == [0, 1, 1, 1, 1, 0, 0]
    assert _grad(integer.make_spec(4, 2, signed=False), [-0.1, 0, 3.75, 3.9]) == [0, 1, 1, 0]
    minifloat = QUANTIZERS.get("minifloat_ieee").make_spec(8, exponent_width=4)
    assert _grad(minifloat, [-500, -480, 0.3, 480, 500]) == [0, 1, 1, 1, 0]
    assert _grad(QUANTIZERS.get("binary").make_spec(1), [-1.5, -1, 0.2, 1, 1.5]) == [0, 1, 1, 1, 0]
    assert _grad(QUANTIZERS.get("binary").make_spec(1, signed=False), [-0.5, 0, 1, 1.5]) == [0, 1, 1, 0]


def test_ste_passes_the_incoming_gradient_through() -> None:
    spec = QUANTIZERS.get("integer").make_spec(8, 4)
    x = torch.tensor([0.3, -1.2, 9.0], requires_grad=True)
    (spec(x) * torch.tensor([2.0, -3.0, 5.0])).sum().backward()
    assert x.grad is not None
    assert x.grad.tolist() == [2.0, -3.0, 0.0]


#: one example spec per registered quantizer: adding a quantizer must add it here
EXAMPLES = {
    "integer": {"width": 6, "frac_width": 3},
    "minifloat_ieee": {"width": 8, "exponent_width": 4},
    "binary": {"width": 1},
    "learned": {"width": 6, "frac_width": 3},
}


def test_every_quantizer_has_an_example() -> None:
    assert set(QUANTIZERS.names()) == set(EXAMPLES)


@pytest.mark.parametrize("name", QUANTIZERS.names())
@pytest.mark.parametrize("signed", [True, False])
def test_every_quantizer_is_idempotent_and_within_its_bounds(name: str, signed: bool) -> None:
    spec = QUANTIZERS.get(name).make_spec(**EXAMPLES[name], signed=signed)
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 100
    once = spec(x)
    torch.testing.assert_close(spec(once), once, rtol=0, atol=0)
    lo, hi = spec.bounds()
    assert lo <= once.min().item() and once.max().item() <= hi
    assert spec.precision().kind == name and spec.precision().width == spec.width


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("minifloat_ieee", {"width": 8}, "needs an exponent_width"),
        ("minifloat_ieee", {"width": 4, "exponent_width": 4}, "no room"),
        ("binary", {"width": 2}, "stores 1 bit"),
    ],
)
def test_invalid_settings_are_config_errors(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        QUANTIZERS.get(name).make_spec(**kwargs)
