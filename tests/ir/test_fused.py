"""The fused quantizer kernel (``netcarve.ir.fused``) against the op chain it replaces, bit for bit."""

from __future__ import annotations

import itertools

import pytest
import torch

import netcarve.ir.fixedpoint as fixedpoint
from netcarve.ir import fused
from netcarve.ir.fixedpoint import FixedGrid, fixed_quantize, scalar_grid

ROUNDS = ("nearest_even", "nearest_up", "truncate")
OVERFLOWS = ("saturate", "wrap")


def test_the_kernel_is_built() -> None:
    """``make setup`` builds it (g++, ninja from the dependencies): the tests below compare it, not the chain
    with itself."""
    assert fused.available()


def _values(dtype: torch.dtype) -> torch.Tensor:
    """[4, 6, 32] values: normal ones, every tie at f = 0..3 (k + ½ at steps 2^−f), ±0, NaN, ±inf, huge ones."""
    torch.manual_seed(0)
    x = torch.randn(4, 6, 32, dtype=dtype) * 6
    ties = torch.arange(-8, 8, dtype=dtype) + 0.5
    for f in range(4):
        x[f, 0, :16] = ties / 2**f
    x[0, 1, :8] = torch.tensor([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 3.0], dtype=dtype)
    return x


def _grids(dtype: torch.dtype) -> list[FixedGrid]:
    """A scalar signed and unsigned grid, one per member ([4, 1, 1]), one per channel ([6, 1]) and one per
    element with pruned (width 0) elements."""
    torch.manual_seed(1)
    widths = torch.randint(0, 7, (4, 6, 32)).double()
    return [
        scalar_grid(6, 2, True),
        scalar_grid(4, 1, False),
        FixedGrid.of(
            torch.tensor([3.0, 5.0, 8.0, 2.0]).view(4, 1, 1),
            torch.tensor([1.0, 2.0, 0.0, -1.0]).view(4, 1, 1),
            True,
            dtype=dtype,
        ),
        FixedGrid.of(torch.arange(2.0, 8.0).view(6, 1), torch.arange(-1.0, 5.0).view(6, 1), False, dtype=dtype),
        FixedGrid.of(widths, torch.randint(-2, 6, (4, 6, 32)).double(), True, dtype=dtype),
    ]


def _run(x: torch.Tensor, grid: FixedGrid, round: str, overflow: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, gradient of the sum of the outputs w.r.t. x: the straight-through mask)."""
    x = x.detach().clone().requires_grad_(True)
    out = fixed_quantize(x, grid, round, overflow)
    out.backward(torch.ones_like(out))
    assert x.grad is not None
    return out.detach(), x.grad


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values (every bit but a zero's sign: torch's own clamp returns −0 or +0 for a rounded −0 depending
    on whether the element falls in one of its vector blocks or in the scalar tail), NaN where the other has
    NaN."""
    return bool(torch.equal(a.isnan(), b.isnan()) and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_kernel_equals_the_op_chain_bit_for_bit(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every round × overflow mode, both dtypes, scalar / per-member / per-channel / per-element grids (with
    pruned elements), contiguous and strided (transposed, expanded) values with ties, ±0, NaN, ±inf and
    values far out of range: the kernel's output and straight-through mask equal the op chain's (up to a zero's
    sign, see :func:`_same`), and so does its output without the mask (no gradient recorded)."""
    x = _values(dtype)
    views = [x, x.transpose(0, 1).contiguous().transpose(0, 1), x[:1].expand(4, 6, 32)]
    for grid, round, overflow in itertools.product(_grids(dtype), ROUNDS, OVERFLOWS):
        for values in views:
            fast = _run(values, grid, round, overflow)
            with monkeypatch.context() as chain:
                chain.setattr(fixedpoint, "kernel", lambda: None)
                slow = _run(values, grid, round, overflow)
            assert _same(fast[0], slow[0]), (round, overflow, grid.k_hi)
            assert torch.equal(fast[1], slow[1]), (round, overflow)
            with torch.no_grad():  # no gradient wanted: the kernel skips the mask, the values are the same
                assert _same(fixed_quantize(values, grid, round, overflow), slow[0]), (round, overflow)


def test_the_kernel_is_used_where_it_can_be(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU float32 values (a plain tensor or a parameter) on a grid that does not widen them go through the
    kernel; a grid that broadcasts the values to a larger shape or to a wider dtype, and float16 values, go
    through the chain (same results as ever)."""
    calls: list[tuple[int, ...]] = []
    real = fused.kernel()
    assert real is not None

    class Spy:
        @staticmethod
        def fixed_quantize(x: torch.Tensor, *args: object) -> object:
            calls.append(tuple(x.shape))
            return real.fixed_quantize(x, *args)

    monkeypatch.setattr(fixedpoint, "kernel", lambda: Spy)
    grid = FixedGrid.of(torch.tensor([3.0, 5.0]).view(2, 1), 1, True)
    fixed_quantize(torch.randn(2, 5), grid)
    assert calls == [(2, 5)]
    widened = fixed_quantize(torch.randn(1, 5), grid)  # the grid makes it [2, 5]
    assert calls == [(2, 5)] and widened.shape == (2, 5)
    fixed_quantize(torch.randn(2, 5, dtype=torch.float16), scalar_grid(4, 1))
    assert calls == [(2, 5)]
    fixed_quantize(torch.nn.Parameter(torch.randn(3, 5)), scalar_grid(4, 1))  # a weight: through the kernel
    assert calls == [(2, 5), (3, 5)]
    wider = FixedGrid.of(torch.tensor([3.0, 5.0]).view(2, 1), 1, True, dtype=torch.float64)
    assert fixed_quantize(torch.randn(2, 5), wider).dtype == torch.float64  # the chain promotes, as ever
    assert calls == [(2, 5), (3, 5)]
    deeper = FixedGrid.of(torch.tensor([3.0, 5.0]).view(2, 1, 1), 1, True)
    assert fixed_quantize(torch.randn(2, 5), deeper).shape == (2, 2, 5)  # more dimensions: the chain
    mismatched = FixedGrid.of(torch.tensor([3.0, 5.0, 6.0]).view(3, 1), 1, True)
    with pytest.raises(RuntimeError, match="size"):  # the chain's own error, not the kernel's
        fixed_quantize(torch.randn(2, 5), mismatched)
    assert calls == [(2, 5), (3, 5)]


def test_the_mask_is_computed_only_when_a_gradient_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's straight-through mask is asked for when a gradient is recorded for the values, and not for a
    parameter quantized under no_grad (evaluation) or values that require no gradient; the values are the
    same either way."""
    real = fused.kernel()
    assert real is not None
    masks: list[bool] = []

    class Spy:
        @staticmethod
        def fixed_quantize(x: torch.Tensor, *args: object) -> object:
            masks.append(bool(args[-1]))
            return real.fixed_quantize(x, *args)

    monkeypatch.setattr(fixedpoint, "kernel", lambda: Spy)
    weight, grid = torch.nn.Parameter(torch.randn(3, 5)), scalar_grid(4, 1)
    recorded = fixed_quantize(weight, grid)
    with torch.no_grad():
        evaluated = fixed_quantize(weight, grid)
    plain = fixed_quantize(weight.detach(), grid)
    assert masks == [True, False, False]
    assert torch.equal(recorded.detach(), evaluated) and torch.equal(evaluated, plain)


def test_netcarve_fused_0_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """``NETCARVE_FUSED=0``: no kernel (the chain runs); the setting is read when the kernel is first asked for."""
    monkeypatch.setattr(fused, "_state", {})
    monkeypatch.setenv(fused.SWITCH, "0")
    assert fused.kernel() is None and not fused.available()


def test_fake_tensors_and_out_of_range_grids_take_the_chain() -> None:
    """Under a fake-tensor mode (the analysis's dispatch counter) a real plain tensor and a grid never used
    before give the chain's fake result, not a read of a fake tensor's missing data; a scalar grid that does not
    fit float32 raises the chain's error; a channels-last activation keeps its layout."""
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        out = fixed_quantize(torch.randn(16), scalar_grid(7, 3, True))
    assert isinstance(out, FakeTensor)
    assert fused.available()  # the scalar cache holds no fake tensor: the next real call uses the kernel
    x = torch.randn(16)
    torch.testing.assert_close(fixed_quantize(x, scalar_grid(7, 3, True)), torch.round(x * 8).clamp(-64, 63) / 8)
    with pytest.raises(RuntimeError, match="overflow"):
        fixed_quantize(torch.randn(4), scalar_grid(8, -140, True))
    images = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    assert fixed_quantize(images, scalar_grid(6, 2)).is_contiguous(memory_format=torch.channels_last)


def test_a_built_kernel_is_imported_without_the_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run imports the library ``make setup`` built (no compiler, ninja or build lock involved: a build
    killed earlier cannot make it wait), and a missing library is built in a directory of its own."""
    from torch.utils import cpp_extension

    def no_compiler(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again")

    assert (fused.build_root() / f"{fused._name()}.so").is_file()
    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    monkeypatch.setattr(fused, "_state", {})
    monkeypatch.delenv(fused.SWITCH, raising=False)
    module = fused.kernel()
    assert module is not None and hasattr(module, "fixed_quantize")
