"""The fake-quantization flag: set while a quantizer computes, read by counting tools to skip its ops.

It lives in the IR, below both its writer (``netcarve.transforms.quantize``) and its reader
(``netcarve.analysis``), so the analysis needs nothing from the transforms.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

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
