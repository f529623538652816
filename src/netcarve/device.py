"""Resolve the ``accelerator`` key to a torch device; a missing GPU falls back to CPU with a warning."""

from __future__ import annotations

import logging
import os

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


def available_memory(device: torch.device | None = None) -> int | None:
    """Bytes of memory free for this process now: on a GPU its free device memory, else the host's (Linux
    ``MemAvailable``); None when unknown."""
    if device is not None and device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
