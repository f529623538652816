"""Typed per-node metadata stored under ``node.meta["netcarve"]`` (never module references)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch

from netcarve.config.passes import DEFAULT_OVERFLOW, DEFAULT_ROUND

META_KEY = "netcarve"


@dataclass(frozen=True)
class TensorMeta:
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @classmethod
    def of(cls, tensor: torch.Tensor) -> TensorMeta:
        return cls(tuple(int(s) for s in tensor.shape), str(tensor.dtype).removeprefix("torch."))


@dataclass(frozen=True)
class Precision:
    """How one operand is stored: ``kind`` is "float" or a quantizer name; ``width`` in bits; ``round`` and
    ``overflow`` are the fixed-point modes (``netcarve.config.passes.ROUND_MODES``/``OVERFLOW_MODES``)."""

    kind: str = "float"
    width: int = 32
    frac_width: int | None = None
    exponent_width: int | None = None
    exponent_bias: int | None = None
    round: str = DEFAULT_ROUND
    overflow: str = DEFAULT_OVERFLOW
    #: per-element formats only (None otherwise): the mean element width and the share of pruned (width 0)
    #: elements; ``width`` and ``frac_width`` are then the largest element's
    mean_width: float | None = None
    pruned_share: float | None = None
    #: ``frac_width = "auto"``: the frac follows the values' range (``frac_width`` None; the width, which is
    #: all that size and bit-operation counts read, is fixed)
    auto_frac: bool = False

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    def describe(self) -> str:
        """E.g. ``float32``, ``integer(8,4)``, ``integer(8,4,trn,wrap)`` (only non-default modes are shown),
        ``integer(≤8,≤4,mean 5.25)`` (per-element formats), ``integer(3,auto)`` (a range-aware frac)."""
        if self.is_float:
            return f"float{self.width}"
        if self.frac_width is not None or self.auto_frac:
            modes = [_SHORT[m] for m in (self.round, self.overflow) if m not in (DEFAULT_ROUND, DEFAULT_OVERFLOW)]
            if self.mean_width is not None:  # per element: the largest width and frac (≤), then the mean width
                head = [f"≤{self.width}", f"≤{self.frac_width}", f"mean {self.mean_width:.3g}"]
                return f"{self.kind}({','.join([*head, *modes])})"
            frac = "auto" if self.auto_frac else str(self.frac_width)
            return f"{self.kind}({','.join([str(self.width), frac, *modes])})"
        if self.exponent_width is not None:
            return f"{self.kind}({self.width},e{self.exponent_width})"
        return f"{self.kind}({self.width})"


#: short names of the non-default modes in :meth:`Precision.describe` (ap_fixed's AP_RND, AP_TRN, AP_WRAP)
_SHORT = {"nearest_up": "rnd", "truncate": "trn", "wrap": "wrap"}
FLOAT32 = Precision()
_EMPTY: Mapping[str, Precision] = MappingProxyType({})


@dataclass(frozen=True)
class NodeMeta:
    """What netcarve knows of one fx node: its op kind, tensor shapes and per-operand precision."""

    name: str
    op: str
    kind: str
    target: str
    inputs: tuple[TensorMeta, ...] = ()
    output: TensorMeta | None = None
    precision: Mapping[str, Precision] = field(default_factory=lambda: _EMPTY)

    def operand_precision(self, operand: str) -> Precision:
        """Precision of ``data_in``/``weight``/``bias``/``data_out``; float32 when not quantized."""
        return self.precision.get(operand, FLOAT32)
