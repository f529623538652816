"""Resolve the ``accelerator`` key to a torch device; a missing GPU falls back to CPU with a warning."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def resolve_device(accelerator: str) -> torch.device:
    name = accelerator.lower()
    if name in ("gpu", "cuda"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.warning("accelerator %r requested but no CUDA device is available: using the CPU", accelerator)
        return torch.device("cpu")
    if name == "mps":
        if torch.backends.mps.is_available():
            return torch.device("mps")
        log.warning("accelerator 'mps' requested but not available: using the CPU")
        return torch.device("cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device("cpu")
