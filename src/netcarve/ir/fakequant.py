"""The fake-quantization flag: set while a quantizer computes, read by counting tools to skip its ops.

It lives in the IR, below both its writer (``netcarve.transforms.quantize``) and its reader
(``netcarve.analysis``), so the analysis needs nothing from the transforms.
"""

from __future__ import annotations

import contextvars

_IN_FAKE_QUANT: contextvars.ContextVar[bool] = contextvars.ContextVar("netcarve_fake_quant", default=False)


def in_fake_quant() -> bool:
    """True while a quantizer computes: counting tools can skip the ops of fake quantization."""
    return _IN_FAKE_QUANT.get()


class fake_quant_scope:  # lower case: used as the function it was, ``with fake_quant_scope():``
    """Mark the ops run inside as fake quantization (:func:`in_fake_quant` is True there). A class rather than
    a ``@contextmanager`` generator: it is entered around every quantizer call (0.4 vs 2.5 µs). An instance is
    entered by one thread, as ``with fake_quant_scope():`` does."""

    __slots__ = ("_tokens",)

    def __init__(self) -> None:
        self._tokens: list[contextvars.Token[bool]] = []

    def __enter__(self) -> None:
        self._tokens.append(_IN_FAKE_QUANT.set(True))

    def __exit__(self, *exc: object) -> None:
        _IN_FAKE_QUANT.reset(self._tokens.pop())
