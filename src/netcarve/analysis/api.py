"""``netcarve.analyze``: exact per-layer counts of a model or graph, and the ``analyze`` analysis pass."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from netcarve.analysis.assemble import build_report
from netcarve.analysis.closed_form import count_closed_form
from netcarve.analysis.counter import GraphCounts, count_by_dispatch
from netcarve.analysis.counts import CONVENTIONS, Convention
from netcarve.analysis.latency import measure_latency
from netcarve.analysis.report import Report
from netcarve.errors import ModelError, PassError
from netcarve.ir.graph import Graph
from netcarve.ir.passes import PassResult, register_pass

log = logging.getLogger(__name__)

Method = Literal["auto", "closed_form", "dispatch"]
METHODS: tuple[Method, ...] = ("auto", "closed_form", "dispatch")


def _example_shape(example_inputs: torch.Tensor | Sequence[int]) -> tuple[int, ...]:
    shape = tuple(example_inputs.shape) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    if len(shape) < 1 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ModelError(f"example inputs must be a tensor or a shape with the batch first, got {shape!r}")
    return shape


def _as_graph(model_or_graph: nn.Module | Graph, shape: tuple[int, ...]) -> Graph:
    if isinstance(model_or_graph, Graph):
        if tuple(shape[1:]) != model_or_graph.input_shape:
            raise ModelError(
                f"example inputs {shape} do not match the graph's input shape (B, {model_or_graph.input_shape})"
            )
        return model_or_graph
    if isinstance(model_or_graph, nn.Module):
        return Graph.from_module(model_or_graph, shape[1:])
    raise ModelError(f"analyze takes an nn.Module or a Graph, got {type(model_or_graph).__name__}")


def count(graph: Graph, example: torch.Tensor | tuple[int, ...], method: Method = "auto") -> GraphCounts:
    """Per-node counts: closed form from NodeMeta where it is exact (``auto``), else the dispatch counter."""
    shape = _example_shape(example)
    plain = not isinstance(example, torch.Tensor) or (example.dtype == torch.float32 and not example.requires_grad)
    if method != "dispatch" and plain:
        counted = count_closed_form(graph, shape[0])
        if counted is not None:
            return counted
    if method == "closed_form":
        raise ModelError("this graph has nodes without an exact closed form; count it with method='dispatch'")
    return count_by_dispatch(graph, example)


def analyze(
    model_or_graph: nn.Module | Graph,
    example_inputs: torch.Tensor | Sequence[int],
    *,
    convention: Convention = "netcarve",
    method: Method = "auto",
    compare_to: int = 32,
    latency: bool = False,
    latency_runs: int = 100,
) -> Report:
    """Params, size, MACs/FLOPs/BitOPs (forward and backward), memory and optionally latency (DESIGN §5).

    ``example_inputs`` is a tensor or a shape including the batch, e.g. ``(1, 16)``; counts are at that
    batch size. ``convention="mase"`` reproduces the seed lab report's arithmetic. ``method`` chooses the
    counting path (``auto``: closed form where exact, else dispatch; both give identical counts).
    """
    if convention not in CONVENTIONS:
        raise ModelError(f"unknown convention {convention!r} (choose {' or '.join(CONVENTIONS)})")
    if method not in METHODS:
        raise ModelError(f"unknown counting method {method!r} (choose {', '.join(METHODS)})")
    shape = _example_shape(example_inputs)
    graph = _as_graph(model_or_graph, shape)
    example = example_inputs if isinstance(example_inputs, torch.Tensor) else shape
    report = build_report(graph, count(graph, example, method), convention, compare_to)
    if report.uncounted:
        log.info("ops without a formula (not counted): %s", report.uncounted)
    if latency:
        tensor = example_inputs if isinstance(example_inputs, torch.Tensor) else torch.zeros(shape)
        report = report.with_latency(measure_latency(graph.module, tensor, runs=latency_runs))
    return report


@dataclass(frozen=True)
class AnalyzeConfig:
    """Settings of the ``analyze`` pass."""

    batch_size: int = 1
    convention: Convention = "netcarve"
    compare_to: int = 32
    latency: bool = False


@register_pass("analyze", kind="analysis")
def analyze_pass(graph: Graph, config: AnalyzeConfig | None = None) -> PassResult[Report]:
    """Count params, size, MACs/FLOPs/BitOPs, backward and memory of a graph (DESIGN §5); graph unchanged."""
    config = config or AnalyzeConfig()
    if config.batch_size < 1:
        raise PassError(f"analyze: batch_size must be ≥ 1, got {config.batch_size}")
    report = analyze(
        graph,
        (config.batch_size, *graph.input_shape),
        convention=config.convention,
        compare_to=config.compare_to,
        latency=config.latency,
    )
    return PassResult(graph, report)
