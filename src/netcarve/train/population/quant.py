"""The integer quantizer with per-member parameters, for the batched layers: the one integer quantizer,
:func:`netcarve.ir.fixedpoint.fixed_quantize` (forward and clipped straight-through gradient), over a
:class:`~netcarve.ir.fixedpoint.FixedGrid` of ``[K, 1, …]`` tensors, one row per member.

The specs are read by their attributes (:class:`IntegerSpec`), so training imports nothing from the
transforms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from netcarve.ir.fixedpoint import FixedGrid, fixed_quantize


class IntegerSpec(Protocol):
    """What the batched quantizer reads of one member's ``QuantSpec`` (its quantizer is ``integer``)."""

    width: int
    frac_width: int | None
    signed: bool
    round: str
    overflow: str


@dataclass(frozen=True)
class _BQuant:
    """One operand's per-member integer quantization: :func:`~netcarve.ir.fixedpoint.fixed_quantize` with a
    grid whose tensors are shaped to broadcast against the operand (one row per member)."""

    round: str
    overflow: str
    grid: FixedGrid

    @staticmethod
    def of(specs: Sequence[IntegerSpec], dims: int, device: torch.device) -> _BQuant:
        shape = (len(specs),) + (1,) * (dims - 1)

        def t(values: Sequence[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64, device=device).view(shape)

        grid = FixedGrid.of(
            t([s.width for s in specs]), t([s.frac_width or 0 for s in specs]), t([s.signed for s in specs]),
            device=device,
        )  # fmt: skip
        return _BQuant(specs[0].round, specs[0].overflow, grid)

    def select(self, idx: torch.Tensor) -> _BQuant:
        return _BQuant(self.round, self.overflow, self.grid.select(idx))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return fixed_quantize(x, self.grid, self.round, self.overflow)
