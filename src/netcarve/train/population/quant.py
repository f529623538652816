"""The integer quantizer with per-member parameters, for the batched layers: the one integer quantizer,
:func:`netcarve.ir.fixedpoint.fixed_quantize` (forward and clipped straight-through gradient), over a
:class:`~netcarve.ir.fixedpoint.FixedGrid` of ``[K, 1, …]`` tensors, one row per member.

An automatic frac (``frac_width = "auto"``, weights and biases) is taken at every call from each member's
own rows: the member's max |x| (padding is exactly 0, so it does not count) through the same
:func:`~netcarve.ir.fixedpoint.auto_frac` a member alone uses, so a member gets the frac it would get alone.
A template's members are all automatic or all fixed for an operand (the template key says which).

A ``learned`` operand (:class:`_BLearned`) stacks each member's state (fracs, and an activation's calibrated
range) padded to the batch's widths, and quantizes with the learned quantizer's arithmetic
(:func:`~netcarve.ir.fixedpoint.range_format`, :func:`~netcarve.ir.fixedpoint.learned_quantize`), so a member's
forward, gradients and EBOPs are those it has alone, up to the batched products' summation order (last bits,
which a rounded frac or calibrated range can amplify over a training, as a thread count can alone).

Padding is inert: a padded element's value is exactly 0, so its width is 0 (pruned, no gradient to the frac
from the value nor from EBOPs), and a group spanning real and padded elements (per channel or layer) has the
real elements' width: a 0 in a range changes no width (bits(n ≤ 0) = 0); EBOPs mask the padded weights.

The specs are read by their attributes (:class:`IntegerSpec`), the learned state through
:func:`netcarve.train.resources.learned_state`, so training imports nothing from the transforms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from netcarve.ir.fixedpoint import (
    FixedGrid,
    auto_frac,
    fixed_quantize,
    learned_bits,
    learned_quantize,
    range_format,
)
from netcarve.train.resources import LearnedState


def region(pos: int, shape: Sequence[int]) -> tuple[int | slice, ...]:
    """The index of member ``pos``'s unpadded ``shape`` in a stacked tensor."""
    return (pos, *(slice(0, s) for s in shape))


def stack_padded(tensors: Sequence[torch.Tensor], shape: tuple[int, ...], fill: float = 0.0) -> torch.Tensor:
    """The members' ``tensors`` stacked along a new leading dimension, each padded to ``shape`` with ``fill``."""
    out = torch.full((len(tensors), *shape), fill, dtype=tensors[0].dtype, device=tensors[0].device)
    for i, t in enumerate(tensors):
        out[region(i, t.shape)] = t.detach()
    return out


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

    def __call__(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        grid = self.grid
        if self.auto:
            with torch.no_grad():
                tops = x.detach().abs().flatten(1).amax(1).tolist()  # exact floats, as max_magnitude's
            fracs = [auto_frac(m, w, s) for m, w, s in zip(tops, self.widths, self.signed, strict=True)]
            grid = _with_fracs(grid, fracs)
        return fixed_quantize(x, grid, self.round, self.overflow)

    def bits(self, shape: tuple[int, ...], fresh: bool = False, value: torch.Tensor | None = None) -> torch.Tensor:
        """Each member's width broadcast to ``shape`` (``[K, …]``; for EBOPs; ``fresh`` and ``value``, which a
        learned operand reads, change nothing here)."""
        w = torch.tensor(self.widths, dtype=torch.float32, device=self.grid.step.device)  # type: ignore[union-attr]
        return w.view((-1,) + (1,) * (len(shape) - 1)).expand(shape)


class _BLearned:
    """One operand's stacked learned state: ``frac`` ``[K, *group]`` (a parameter: the members' solo fracs
    padded) and, for an activation, the calibrated range ``lo``/``hi`` of the same shape; an activation's solo
    group shape (F,) or (1,) is used as ``[K, F, 1]`` against the features-major ``[K, F, B]`` values."""

    def __init__(self, round: str, overflow: str, signed: bool, frac: nn.Parameter, lo: torch.Tensor | None,
                 hi: torch.Tensor | None, activation: bool) -> None:  # fmt: skip
        self.round, self.overflow, self.signed = round, overflow, signed
        self.frac, self.lo, self.hi, self.activation = frac, lo, hi, activation
        #: the bits of the last training forward pass (taken once by the step's EBOPs term)
        self.step_bits: torch.Tensor | None = None

    @staticmethod
    def of(specs: Sequence[IntegerSpec], states: Sequence[LearnedState]) -> _BLearned:
        shape = tuple(max(dims) for dims in zip(*(s.frac.shape for s in states), strict=True))
        activation = bool(states[0].activation)
        frac = nn.Parameter(stack_padded([s.frac for s in states], shape))
        lo = stack_padded([s.lo for s in states], shape) if activation else None
        hi = stack_padded([s.hi for s in states], shape) if activation else None
        spec = specs[0]
        return _BLearned(spec.round, spec.overflow, bool(spec.signed), frac, lo, hi, activation)

    def _view(self, t: torch.Tensor) -> torch.Tensor:
        return t.unsqueeze(-1) if self.activation else t

    def _range(self, x: torch.Tensor | None, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Each group's range: an activation's calibrated one (updated by ``x`` in training), a parameter's own
        min and max (``x`` is the stacked parameter)."""
        if self.activation:
            assert self.lo is not None and self.hi is not None
            if x is not None and training:
                lo, hi = _group_range(x, self._view(self.lo).shape)
                with torch.no_grad():
                    self._view(self.lo).copy_(torch.minimum(self._view(self.lo), lo))
                    self._view(self.hi).copy_(torch.maximum(self._view(self.hi), hi))
            return self._view(self.lo), self._view(self.hi)
        assert x is not None
        return _group_range(x, tuple(self.frac.shape))

    def __call__(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        lo, hi = self._range(x, training)
        frac = self._view(self.frac)
        width, f = range_format(lo, hi, frac, self.round, self.signed)
        grid = FixedGrid.of_integers(width.to(x.dtype), f.to(x.dtype), self.signed)
        q = learned_quantize(x, grid, frac, self.round, self.overflow)
        if training and torch.is_grad_enabled():
            self.step_bits = learned_bits(width, frac)
        return q

    def bits(self, shape: tuple[int, ...], fresh: bool = False, value: torch.Tensor | None = None) -> torch.Tensor:
        """The bits per group broadcast to ``shape`` (differentiable through the fracs): the last training
        forward's (``fresh``), else from the current range (eval: an activation's frozen one; ``value``: a
        parameter's current values)."""
        if fresh and self.step_bits is not None:
            bits, self.step_bits = self.step_bits, None
            return bits.expand(shape)
        lo, hi = self._range(value, False)
        frac = self._view(self.frac)
        width, _ = range_format(lo, hi, frac, self.round, self.signed)
        return learned_bits(width, frac).expand(shape)

    def select(self, idx: torch.Tensor) -> _BLearned:
        pick = lambda t: None if t is None else t.index_select(0, idx)  # noqa: E731
        frac = nn.Parameter(self.frac.detach().index_select(0, idx))
        return _BLearned(self.round, self.overflow, self.signed, frac, pick(self.lo), pick(self.hi), self.activation)

    def write(self, pos: int, state: LearnedState) -> None:
        """Copy member ``pos``'s fracs (and range) into its own ``state``, unpadded."""
        with torch.no_grad():
            state.frac.copy_(self.frac[region(pos, state.frac.shape)])
            if self.activation:
                assert self.lo is not None and self.hi is not None
                state.lo.copy_(self.lo[region(pos, state.lo.shape)])
                state.hi.copy_(self.hi[region(pos, state.hi.shape)])


def _group_range(x: torch.Tensor, group: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The min and max of the stacked ``x`` over each member's groups of shape ``group`` (``[K, …]``, the rank
    of ``x``; reduced over the dimensions where it is 1)."""
    dims = [d for d in range(1, x.dim()) if group[d] == 1 and x.shape[d] != 1]
    v = x.detach()
    if not dims:
        return v, v
    return torch.amin(v, dim=dims, keepdim=True), torch.amax(v, dim=dims, keepdim=True)


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
