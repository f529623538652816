"""The fake-quantization flag (set while a quantizer computes, read by counting tools to skip its ops) and
the integer rounding modes.

Both live in the IR, below their users: the flag's writer (``netcarve.transforms.quantize``) and reader
(``netcarve.analysis``), the rounding's quantizers and batched population training (``netcarve.train``),
so neither the analysis nor training needs anything from the transforms.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

_IN_FAKE_QUANT: contextvars.ContextVar[bool] = contextvars.ContextVar("netcarve_fake_quant", default=False)


def in_fake_quant() -> bool:
    """True while a quantizer computes: counting tools can skip the ops of fake quantization."""
    return _IN_FAKE_QUANT.get()


@contextmanager
def fake_quant_scope() -> Iterator[None]:
    """Mark the ops run inside as fake quantization (:func:`in_fake_quant` is True there)."""
    token = _IN_FAKE_QUANT.set(True)
    try:
        yield
    finally:
        _IN_FAKE_QUANT.reset(token)


#: round mode → how x · 2^frac becomes an integer (``netcarve.config.passes.ROUND_MODES``)
ROUNDING: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "nearest_even": torch.round,
    "nearest_up": lambda t: torch.floor(t + 0.5),
    "truncate": torch.floor,
}
