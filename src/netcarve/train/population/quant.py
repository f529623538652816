"""The integer quantizer with per-member parameters, for the batched layers: the one integer quantizer,
:func:`netcarve.ir.fixedpoint.fixed_quantize` (forward and clipped straight-through gradient), over a
:class:`~netcarve.ir.fixedpoint.FixedGrid` of ``[K, 1, …]`` tensors, one row per member.

An automatic frac (``frac_width = "auto"``, weights and biases) is taken at every call from each member's
own rows: the member's max |x| (padding is exactly 0, so it does not count) through the same
:func:`~netcarve.ir.fixedpoint.auto_frac` a member alone uses, so a member gets the frac it would get alone.
A template's members are all automatic or all fixed for an operand (the template key says which).

The specs are read by their attributes (:class:`IntegerSpec`), so training imports nothing from the
transforms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from netcarve.ir.fixedpoint import FixedGrid, auto_frac, fixed_quantize


class IntegerSpec(Protocol):
    """What the batched quantizer reads of one member's ``QuantSpec`` (its quantizer is ``integer``)."""

    width: int
    frac_width: int | None
    signed: bool
    round: str
    overflow: str
    auto_frac: bool


@dataclass(frozen=True)
class _BQuant:
    """One operand's per-member integer quantization: :func:`~netcarve.ir.fixedpoint.fixed_quantize` with a
    grid whose tensors are shaped to broadcast against the operand (one row per member). ``auto``: the grid's
    fracs are recomputed from the values at every call (module docstring)."""

    round: str
    overflow: str
    grid: FixedGrid
    widths: tuple[int, ...]
    signed: tuple[bool, ...]
    auto: bool = False

    @staticmethod
    def of(specs: Sequence[IntegerSpec], dims: int, device: torch.device) -> _BQuant:
        fracs = [s.frac_width or 0 for s in specs]
        widths, signed = tuple(int(s.width) for s in specs), tuple(bool(s.signed) for s in specs)
        auto = bool(getattr(specs[0], "auto_frac", False))
        return _BQuant(specs[0].round, specs[0].overflow, _grid(widths, fracs, signed, dims, device), widths, signed,
                       auto)  # fmt: skip

    def select(self, idx: torch.Tensor) -> _BQuant:
        keep = idx.tolist()
        widths, signed = tuple(self.widths[i] for i in keep), tuple(self.signed[i] for i in keep)
        return _BQuant(self.round, self.overflow, self.grid.select(idx), widths, signed, self.auto)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.grid
        if self.auto:
            with torch.no_grad():
                tops = x.detach().abs().flatten(1).amax(1).tolist()  # exact floats, as max_magnitude's
            fracs = [auto_frac(m, w, s) for m, w, s in zip(tops, self.widths, self.signed, strict=True)]
            grid = _with_fracs(grid, fracs)
        return fixed_quantize(x, grid, self.round, self.overflow)


def _with_fracs(grid: FixedGrid, fracs: Sequence[int]) -> FixedGrid:
    """``grid`` (of the same widths and signs) at other fracs: the fields ``FixedGrid.of`` would give, computed
    the same way (powers of two and small integers, exact in float64 and float32) without its checks and
    broadcasts, which would cost most of an automatic quantizer's call."""
    k_lo, k_hi = grid.k_lo, grid.k_hi
    assert isinstance(k_lo, torch.Tensor) and isinstance(k_hi, torch.Tensor)
    f = torch.tensor(fracs, dtype=torch.float64, device=k_lo.device).view(k_lo.shape[:1] + (1,) * (k_lo.dim() - 1))
    scale, step = torch.exp2(f), torch.exp2(-f)
    dtype = k_lo.dtype
    return FixedGrid(scale.to(dtype), step.to(dtype), k_lo, k_hi, grid.span, (k_lo.double() * step).to(dtype),
                     (k_hi.double() * step).to(dtype))  # fmt: skip


def _grid(
    widths: Sequence[int], fracs: Sequence[int], signed: Sequence[bool], dims: int, device: torch.device
) -> FixedGrid:
    shape = (len(widths),) + (1,) * (dims - 1)

    def t(values: Sequence[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64, device=device).view(shape)

    return FixedGrid.of(t(widths), t(fracs), t(signed), device=device)
