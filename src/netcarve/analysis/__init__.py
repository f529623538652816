"""Analysis: exact params, size, MACs/FLOPs/BitOPs (forward and backward), memory and latency (README: Analyze)."""

from netcarve.analysis.api import AnalyzeConfig, analyze, analyze_pass, count
from netcarve.analysis.latency import measure_latency
from netcarve.analysis.records import Latency, LayerRecord, Report, TotalRecord

__all__ = [
    "AnalyzeConfig",
    "Latency",
    "LayerRecord",
    "Report",
    "TotalRecord",
    "analyze",
    "analyze_pass",
    "count",
    "measure_latency",
]
