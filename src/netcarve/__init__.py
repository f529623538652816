"""netcarve: hardware-aware design-space exploration of small neural networks.

Heavy modules (torch) are imported lazily, so ``netcarve --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "analyze": "netcarve.analysis.api",
    "quantize": "netcarve.transforms.quantize.api",
    "change_width": "netcarve.transforms.width",
    "Graph": "netcarve.ir.graph",
    "create_model": "netcarve.models",
    "load_dataset": "netcarve.data",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'netcarve' has no attribute {name!r}")
