"""The one integer quantizer (``netcarve.ir.fixedpoint``): every round × overflow mode, ties, bounds, the
clipped straight-through gradient, per-channel and per-element formats, its mode table and mode check, and the
range-aware frac (``auto_frac``)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from netcarve.config.passes import OVERFLOW_MODES, ROUND_MODES
from netcarve.errors import ConfigError
from netcarve.ir.fixedpoint import (
    AUTO_FRAC_LIMIT,
    OVERFLOW_NAMES,
    ROUND_NAMES,
    ROUNDING,
    FixedGrid,
    auto_frac,
    backend_modes,
    check_modes,
    fixed_quantize,
    int_range,
    max_magnitude,
    scalar_grid,
)

#: w = 4, f = 1 (step ½). x · 2 = 0.5, 1.5, −0.5, −1.5 (ties), 2.6, 7.5 (a tie at the top), 8, −8.5, −10, 16
X = [0.25, 0.75, -0.25, -0.75, 1.3, 3.75, 4.0, -4.25, -5.0, 8.0]

#: (signed, round, overflow) → expected values, derived by hand in test_every_mode_pair_by_hand's docstring
GOLDEN = {
    (True, "nearest_even", "saturate"): [0, 1, 0, -1, 1.5, 3.5, 3.5, -4, -4, 3.5],
    (True, "nearest_up", "saturate"): [0.5, 1, 0, -0.5, 1.5, 3.5, 3.5, -4, -4, 3.5],
    (True, "truncate", "saturate"): [0, 0.5, -0.5, -1, 1, 3.5, 3.5, -4, -4, 3.5],
    (True, "nearest_even", "wrap"): [0, 1, 0, -1, 1.5, -4, -4, -4, 3, 0],
    (True, "nearest_up", "wrap"): [0.5, 1, 0, -0.5, 1.5, -4, -4, -4, 3, 0],
    (True, "truncate", "wrap"): [0, 0.5, -0.5, -1, 1, 3.5, -4, 3.5, 3, 0],
    (False, "nearest_even", "saturate"): [0, 1, 0, 0, 1.5, 4, 4, 0, 0, 7.5],
    (False, "nearest_up", "saturate"): [0.5, 1, 0, 0, 1.5, 4, 4, 0, 0, 7.5],
    (False, "truncate", "saturate"): [0, 0.5, 0, 0, 1, 3.5, 4, 0, 0, 7.5],
    (False, "nearest_even", "wrap"): [0, 1, 0, 7, 1.5, 4, 4, 4, 3, 0],
    (False, "nearest_up", "wrap"): [0.5, 1, 0, 7.5, 1.5, 4, 4, 4, 3, 0],
    (False, "truncate", "wrap"): [0, 0.5, 7.5, 7, 1, 3.5, 4, 3.5, 3, 0],
}


def test_the_golden_table_covers_every_mode_pair() -> None:
    assert set(ROUNDING) == set(ROUND_MODES) == set(ROUND_NAMES)
    assert set(OVERFLOW_NAMES) == set(OVERFLOW_MODES)
    assert set(GOLDEN) == {(s, r, o) for s in (True, False) for r in ROUND_MODES for o in OVERFLOW_MODES}


@pytest.mark.parametrize(("signed", "round_mode", "overflow"), list(GOLDEN))
def test_every_mode_pair_by_hand(signed: bool, round_mode: str, overflow: str) -> None:
    """w = 4, f = 1: k = round(x · 2), value k / 2. x · 2 = [0.5, 1.5, −0.5, −1.5, 2.6, 7.5, 8, −8.5, −10, 16].

    k before overflow: nearest_even (half to even) [0, 2, −0, −2, 3, 8, 8, −8, −10, 16]; nearest_up
    floor(t + ½) [1, 2, 0, −1, 3, 8, 8, −8, −10, 16]; truncate floor(t) [0, 1, −1, −2, 2, 7, 8, −9, −10, 16].

    Signed, k in [−8, 7]. saturate clamps: 8, 16 → 7 (3.5), −9, −10 → −8 (−4). wrap k ↦ ((k + 8) mod 16) − 8:
    8 → −8, −8 → −8, −9 → 7, −10 → 6, 16 → 0.
    Unsigned, k in [0, 15]. saturate: negatives → 0, 16 → 15 (7.5). wrap k mod 16: −1 → 15, −2 → 14,
    −8 → 8, −9 → 7, −10 → 6, 16 → 0. Halving every k gives the GOLDEN rows."""
    grid = scalar_grid(4, 1, signed)
    got = fixed_quantize(torch.tensor(X), grid, round_mode, overflow)
    assert got.tolist() == GOLDEN[(signed, round_mode, overflow)]


@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("signed", [True, False])
def test_clipped_ste_gradient_bounds_included(signed: bool, overflow: str) -> None:
    """w = 4, f = 1: signed range [−4, 3.5], unsigned [0, 7.5]. The gradient is 1 on the range, bounds
    included, and 0 outside it (saturated or wrapped) and at NaN, in every overflow mode. Signed:
    0.25, 0.75, −0.25, −0.75, 1.3 inside; 3.75, 4, −4.25, −5, 8 outside; of the edges −4, 3.5, 0, 7.5 only
    7.5 is outside. Unsigned: −0.25, −0.75, −4.25, −5, 8 outside; of the edges only −4."""
    x = torch.tensor([*X, -4.0, 3.5, 0.0, 7.5, float("nan")], requires_grad=True)
    fixed_quantize(x, scalar_grid(4, 1, signed), "nearest_even", overflow).backward(torch.full_like(x, 3.0))
    assert x.grad is not None
    inside = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0] if signed else [1, 1, 0, 0, 1, 1, 1, 0, 0, 0]
    edges = [1, 1, 1, 0] if signed else [0, 1, 1, 1]  # −4, 3.5, 0, 7.5
    assert x.grad.tolist() == [3.0 * g for g in [*inside, *edges, 0]]


def test_bounds_and_ranges_by_hand() -> None:
    """<8,4> signed: k in [−128, 127], values [−8, 7.9375]; unsigned [0, 255] → [0, 15.9375]; f = −2 (steps
    of 4) and w = 3 signed: k in [−4, 3] → [−16, 12]."""
    assert int_range(8, True) == (-128, 127) and int_range(8, False) == (0, 255)
    assert (scalar_grid(8, 4).lo, scalar_grid(8, 4).hi) == (-8.0, 7.9375)
    assert (scalar_grid(8, 4, False).lo, scalar_grid(8, 4, False).hi) == (0.0, 15.9375)
    grid = scalar_grid(3, -2)
    assert (grid.lo, grid.hi, grid.span) == (-16.0, 12.0, 8.0)
    assert fixed_quantize(torch.tensor([5.9, 6.0, 100.0, -100.0]), grid).tolist() == [4.0, 8.0, 12.0, -16.0]


def _reference(x: float, width: int, frac: int, signed: bool, round_mode: str, overflow: str) -> Fraction:
    """Pure integer arithmetic on exact fractions (independent of torch)."""
    t = Fraction(x) * Fraction(2) ** frac
    k, r = divmod(t.numerator, t.denominator)  # floor, 0 ≤ r < denominator
    if round_mode == "nearest_up":
        k += 2 * r >= t.denominator
    elif round_mode == "nearest_even":
        k += 2 * r > t.denominator or (2 * r == t.denominator and k % 2 == 1)
    lo, hi = int_range(width, signed)
    k = min(max(k, lo), hi) if overflow == "saturate" else (k - lo) % 2**width + lo
    return Fraction(k) / Fraction(2) ** frac


def _formats(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` values (multiples of 1/64 up to ±40, many of them ties) with a random format each: widths
    1 … 12, fracs −2 … 6, either sign."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-2560, 2561, (n,), generator=g).float() / 64
    width = torch.randint(1, 13, (n,), generator=g)
    frac = torch.randint(-2, 7, (n,), generator=g)
    signed = torch.randint(0, 2, (n,), generator=g).bool()
    return x, width, frac, signed


@pytest.mark.parametrize("round_mode", ROUND_MODES)
@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
def test_per_element_formats_match_exact_integer_arithmetic(round_mode: str, overflow: str) -> None:
    """400 values, each with its own (width, frac, sign): one call with per-element tensors equals, element
    by element, the exact-fraction reference and the scalar format's call bit for bit, forward and gradient."""
    x, width, frac, signed = _formats(400, seed=len(round_mode) * 7 + len(overflow))
    xg = x.clone().requires_grad_(True)
    out = fixed_quantize(xg, FixedGrid.of(width, frac, signed), round_mode, overflow)
    out.backward(torch.ones_like(out))
    out = out.detach()
    assert xg.grad is not None
    for i in range(len(x)):
        w, f, s = int(width[i]), int(frac[i]), bool(signed[i])
        expected = _reference(float(x[i]), w, f, s, round_mode, overflow)
        assert Fraction(float(out[i])) == expected, (float(x[i]), w, f, s)
        xi = x[i : i + 1].clone().requires_grad_(True)
        alone = fixed_quantize(xi, scalar_grid(w, f, s), round_mode, overflow)
        alone.backward(torch.ones_like(alone))
        assert torch.equal(out[i : i + 1], alone.detach()) and xi.grad is not None
        assert torch.equal(xg.grad[i : i + 1], xi.grad)


def test_per_channel_format_broadcasts() -> None:
    """A [3, 4] weight with one frac per output channel (shape [3, 1]): row r equals the scalar format
    <6, frac_r> applied to it. By hand, 0.3 at fracs 0, 2, 4: 0, 0.25, 0.3125 (0.3·16 = 4.8 → 5)."""
    w = torch.full((3, 4), 0.3)
    w[:, 1] = torch.tensor([1.6, -40.0, 1.7])
    frac = torch.tensor([[0], [2], [4]])
    got = fixed_quantize(w, FixedGrid.of(6, frac, True))
    assert got[:, 0].tolist() == [0.0, 0.25, 0.3125]
    for r in range(3):
        assert torch.equal(got[r], fixed_quantize(w[r], scalar_grid(6, int(frac[r]), True)))


def test_grid_dtype_and_select() -> None:
    """Tensor parameters give tensors of the asked dtype; select keeps rows (members); 2^16 is exact."""
    grid = FixedGrid.of(torch.tensor([[4], [16]]), torch.tensor([[1], [0]]), dtype=torch.float64)
    assert isinstance(grid.span, torch.Tensor) and grid.span.dtype == torch.float64
    assert grid.span.flatten().tolist() == [16.0, 65536.0] and grid.hi.flatten().tolist() == [3.5, 32767.0]
    picked = grid.select(torch.tensor([1]))
    assert isinstance(picked.k_lo, torch.Tensor) and picked.k_lo.flatten().tolist() == [-32768.0]


def test_invalid_formats_and_modes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="width must be ≥ 1, got 0"):
        FixedGrid.of(0, 0)
    with pytest.raises(ConfigError, match="widths must be integers ≥ 0"):
        FixedGrid.of(torch.tensor([4, -1]), 1)
    with pytest.raises(ConfigError, match=r"^q: unknown weight_round mode 'up' \(valid: nearest_even, "):
        check_modes("up", "saturate", who="q", key="weight_")
    with pytest.raises(ConfigError, match=r"^q: overflow = 'wrap' is not supported \(only 'saturate'\)"):
        check_modes("nearest_even", "wrap", who="q", supported=False)
    check_modes("truncate", "wrap", who="q")  # valid: no error


def test_backend_mode_names_come_from_one_table() -> None:
    """hls4ml names every mode; alkaid has no round half to even (emulated), so it maps the two others."""
    assert backend_modes("hls4ml") == (
        {"nearest_even": "AP_RND_CONV", "nearest_up": "AP_RND", "truncate": "AP_TRN"},
        {"saturate": "AP_SAT", "wrap": "AP_WRAP"},
    )
    assert backend_modes("alkaid") == ({"nearest_up": "RND", "truncate": "TRN"}, {"saturate": "SAT", "wrap": "WRAP"})


@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
@pytest.mark.parametrize("signed", [True, False])
def test_width_zero_is_exactly_zero_with_no_gradient(overflow: str, signed: bool) -> None:
    """Per-element widths [0, 3, 0] (frac 1): the pruned elements are 0 for any input (0, ±0.5, ±100, a tie)
    and pass no gradient, not even at x = 0; the middle element is the ordinary 3-bit grid (signed: k in
    −4..3, so 0.75 → 1.0 (k = 1.5 → 2, half to even), 100 → 1.5 saturated or k = 200 wrapped to (200 + 4) mod 8 − 4 =
    0; unsigned: k in 0..7, 100 → 3.5 or k = 200 mod 8 = 0)."""
    grid = FixedGrid.of(torch.tensor([0, 3, 0]), 1, signed, dtype=torch.float64)
    rows = torch.tensor([[0.0, 0.75, 0.5], [-0.5, 100.0, 100.0], [100.0, 0.0, -100.0]], dtype=torch.float64)
    x = rows.clone().requires_grad_(True)
    y = fixed_quantize(x, grid, "nearest_even", overflow)
    y.sum().backward()
    assert x.grad is not None
    np.testing.assert_array_equal(y[:, [0, 2]].detach().numpy(), np.zeros((3, 2)))
    np.testing.assert_array_equal(x.grad[:, [0, 2]].numpy(), np.zeros((3, 2)))
    top = 1.5 if signed else 3.5
    big = top if overflow == "saturate" else 0.0
    np.testing.assert_array_equal(y[:, 1].detach().numpy(), [1.0, big, 0.0])
    np.testing.assert_array_equal(x.grad[:, 1].numpy(), [1.0, 0.0, 1.0])
    assert bool(torch.isnan(torch.as_tensor(grid.lo))[[0, 2]].all())


#: (m = max |x|, width, signed) → the auto frac, derived by hand in test_auto_frac_by_hand's docstring
AUTO_GOLDEN = [
    (0.3, 3, True, 3),
    (0.375, 3, True, 3),
    (0.25, 3, True, 3),
    (0.5, 3, True, 2),
    (0.3, 3, False, 4),
    (1.0, 3, False, 2),
    (0.125, 2, True, 3),
    (0.125, 8, True, 9),
    (100.0, 4, True, -4),
    (0.3, 1, True, 1),
    (0.0, 3, True, 1),
    (0.0, 8, False, 4),
    (float("nan"), 6, True, 3),
    (1e-30, 8, True, AUTO_FRAC_LIMIT),
    (1e30, 8, True, -AUTO_FRAC_LIMIT),
]


@pytest.mark.parametrize(("m", "width", "signed", "frac"), AUTO_GOLDEN)
def test_auto_frac_by_hand(m: float, width: int, signed: bool, frac: int) -> None:
    """f = the largest integer with m · 2^f ≤ k_top (k_top = 2^(w−1) − 1 signed, 2^w − 1 unsigned, 1 for a
    signed 1-bit grid); m = 0 or NaN → w // 2; clamped to ±64.

    - signed w = 3 (k_top 3): m = 0.3: 0.3·8 = 2.4 ≤ 3 < 0.3·16 = 4.8 → 3 (step 1/8, range [−0.5, 0.375]);
      m = 0.375: 0.375·8 = 3 ≤ 3 (exactly the top value, included) < 6 → 3; m = 0.25 (a power of two): 0.25·8 =
      2 ≤ 3 < 4 → 3 (0.25 is k = 2, below the top code 3); m = 0.5: 0.5·4 = 2 ≤ 3 < 4 → 2.
    - unsigned w = 3 (k_top 7): m = 0.3: 0.3·16 = 4.8 ≤ 7 < 9.6 → 4; m = 1: 4 ≤ 7 < 8 → 2.
    - signed w = 2 (k_top 1): m = 0.125: 0.125·8 = 1 ≤ 1 < 2 → 3 (grid {−0.25, −0.125, 0, 0.125});
      w = 8 (k_top 127): 0.125·512 = 64 ≤ 127 < 128 → 9, above the width (integer bits 8 − 1 − 9 = −2).
    - signed w = 4 (k_top 7), m = 100: 100·2^−4 = 6.25 ≤ 7 < 100·2^−3 = 12.5 → −4 (step 16).
    - signed w = 1 (k_top 0, taken as 1: its nonzero value is −2^−f): m = 0.3: 0.6 ≤ 1 < 1.2 → 1.
    - m = 0: 3 // 2 = 1, 8 // 2 = 4; NaN: 6 // 2 = 3. m = 1e−30 ≈ 2^−99.7 would give 99, clamped to 64; m = 1e30
      ≈ 2^99.7 would give −97 (w = 8), clamped to −64.
    """
    assert auto_frac(m, width, signed) == frac


@pytest.mark.parametrize("signed", [True, False])
def test_auto_frac_covers_the_range_with_the_fewest_integer_bits(signed: bool) -> None:
    """For 2,000 magnitudes spread over 2^−20 … 2^20 (and the exact powers of two in between, the boundary
    cases) at widths 1 … 12: the grid at f holds m (hi ≥ m, so nothing saturates and m keeps its gradient),
    and the grid at f + 1 (one integer bit fewer) does not (its hi < m), where k_top ≥ 1."""
    torch.manual_seed(0)
    ms = torch.exp2(torch.rand(2000, dtype=torch.float64) * 40 - 20).tolist() + [2.0**e for e in range(-20, 21)]
    for width in range(1, 13):
        k_top = max(int_range(width, signed)[1], 1)
        for m in ms:
            f = auto_frac(m, width, signed)
            assert m <= k_top * 2.0**-f, (m, width, f)
            assert m > k_top * 2.0 ** -(f + 1), (m, width, f)


def test_max_magnitude_is_exact_in_any_dtype() -> None:
    """max |x| of a float32 tensor and of its float64 copy are the same Python float (so the training forward
    in float32 and the export in float64 resolve the same frac); an empty tensor has 0."""
    torch.manual_seed(1)
    x = torch.randn(64, 33) * 0.1
    assert max_magnitude(x) == max_magnitude(x.double()) == float(x.abs().max())
    assert max_magnitude(torch.empty(0)) == 0.0
