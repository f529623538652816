"""Sampler comparison (``netcarve compare``): one search per (sampler, seed), best-so-far curves, summary."""

from netcarve.compare.curves import Comparison, Curve, RunTrials, SamplerSummary, Stat, compare_runs
from netcarve.compare.run import CompareResult, resolve_samplers, run_compare

__all__ = [
    "CompareResult",
    "Comparison",
    "Curve",
    "RunTrials",
    "SamplerSummary",
    "Stat",
    "compare_runs",
    "resolve_samplers",
    "run_compare",
]
