"""The integer quantizer with per-member parameters, for the batched layers: forward and clipped
straight-through gradient as ``netcarve.transforms.quantize.quantizers.IntegerQuantizer``'s, per member.

The specs are read by their attributes (:class:`IntegerSpec`), so training imports nothing from the
transforms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from netcarve.ir.fakequant import ROUNDING


class _Quantizer(Protocol):
    name: str

    def int_range(self, spec: Any) -> tuple[int, int]: ...


class IntegerSpec(Protocol):
    """What the batched quantizer reads of one member's ``QuantSpec`` (its quantizer is ``integer``)."""

    quantizer: _Quantizer
    frac_width: int | None
    round: str
    overflow: str

    def bounds(self) -> tuple[float, float]: ...


class _BatchedSTE(torch.autograd.Function):
    """The integer quantizer with per-member parameters; backward passes the gradient where lo ≤ x ≤ hi.

    Two ops fewer than the literal form, with the same results: ``clamp(x, lo, hi) == x`` is lo ≤ x ≤ hi
    (False for NaN, like the comparisons), and multiplying by ``step`` = 2^−frac is dividing by 2^frac
    (both exact)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, q: _BQuant) -> Any:
        ctx.save_for_backward(torch.clamp(x, q.lo, q.hi) == x)
        with torch.no_grad():
            k = ROUNDING[q.round](x * q.scale)
            wrapped = torch.remainder(k - q.k_lo, q.k_hi - q.k_lo + 1) + q.k_lo if q.wrap else None
            return (torch.clamp(k, q.k_lo, q.k_hi) if wrapped is None else wrapped) * q.step

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        (inside,) = ctx.saved_tensors
        return grad * inside, None


@dataclass(frozen=True)
class _BQuant:
    """One operand's per-member integer quantization, each tensor shaped to broadcast against the operand."""

    round: str
    wrap: bool
    scale: torch.Tensor
    step: torch.Tensor
    k_lo: torch.Tensor
    k_hi: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor

    @staticmethod
    def of(specs: Sequence[IntegerSpec], dims: int, device: torch.device) -> _BQuant:
        shape = (len(specs),) + (1,) * (dims - 1)
        ranges = [s.quantizer.int_range(s) for s in specs]
        bounds = [s.bounds() for s in specs]

        def t(values: Sequence[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device).view(shape)

        return _BQuant(
            specs[0].round,
            specs[0].overflow == "wrap",
            t([2.0 ** (s.frac_width or 0) for s in specs]),
            t([2.0 ** -(s.frac_width or 0) for s in specs]),
            t([r[0] for r in ranges]),
            t([r[1] for r in ranges]),
            t([b[0] for b in bounds]),
            t([b[1] for b in bounds]),
        )

    def select(self, idx: torch.Tensor) -> _BQuant:
        pick = lambda v: v.index_select(0, idx)  # noqa: E731
        return _BQuant(
            self.round,
            self.wrap,
            pick(self.scale),
            pick(self.step),
            pick(self.k_lo),
            pick(self.k_hi),
            pick(self.lo),
            pick(self.hi),
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _BatchedSTE.apply(x, self)
        return out
