"""Latency: forward wall time at a stated batch size after warm-up (the one measured metric, README: Analyze).

Each run is timed on its own with ``torch.utils.benchmark.Timer`` (eval mode, no autograd, the thread
count stated in the result), so the median and the 90th percentile are over single forward passes.
"""

from __future__ import annotations

import logging
import statistics

import torch
from torch import nn
from torch.utils import benchmark

from netcarve.analysis.records import Latency
from netcarve.errors import ModelError

log = logging.getLogger(__name__)


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of sorted values (numpy's default method)."""
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def measure_latency(
    model: nn.Module, example: torch.Tensor, *, runs: int = 100, warmup: int = 10, threads: int = 1
) -> Latency:
    """Median and p90 forward time of ``model(example)`` over ``runs`` single runs after ``warmup`` runs."""
    if runs < 1 or warmup < 0:
        raise ModelError(f"latency needs runs ≥ 1 and warmup ≥ 0 (got runs={runs}, warmup={warmup})")
    timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": example}, num_threads=threads)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if warmup:
                timer.timeit(warmup)
            times = sorted(timer.timeit(1).times[0] for _ in range(runs))
    finally:
        model.train(was_training)
    result = Latency(int(example.shape[0]), statistics.median(times), _percentile(times, 0.9), runs, warmup, threads)
    log.debug("latency at batch %d: median %.3g s, p90 %.3g s", result.batch_size, result.median_s, result.p90_s)
    return result
