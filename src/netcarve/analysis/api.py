"""``netcarve.analyze``: exact per-layer counts of a model or graph, and the ``analyze`` analysis pass."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from netcarve.analysis.assemble import build_report
from netcarve.analysis.closed_form import count_closed_form
from netcarve.analysis.counter import GraphCounts, count_by_dispatch
from netcarve.analysis.counts import CONVENTIONS, Convention
from netcarve.analysis.latency import measure_latency
from netcarve.analysis.records import Report
from netcarve.errors import ModelError, PassError
from netcarve.ir.graph import Graph
from netcarve.ir.passes import PassResult, register_pass

log = logging.getLogger(__name__)

Method = Literal["auto", "closed_form", "dispatch"]
METHODS: tuple[Method, ...] = ("auto", "closed_form", "dispatch")


#: what ``analyze`` takes as example inputs: a tensor, a shape with the batch first, or a tuple of one tensor
ExampleInputs = torch.Tensor | Sequence[int] | Sequence[torch.Tensor]


def _example(example_inputs: ExampleInputs) -> torch.Tensor | tuple[int, ...]:
    """A tensor, or a shape with the batch first; ``(x,)`` (fvcore's and FlopCounterMode's form) is ``x``."""
    if isinstance(example_inputs, torch.Tensor):
        return example_inputs
    items = tuple(example_inputs) if isinstance(example_inputs, Sequence) else (example_inputs,)
    if items and any(isinstance(item, torch.Tensor) for item in items):
        if len(items) != 1 or not isinstance(items[0], torch.Tensor):
            kinds = ", ".join(type(item).__name__ for item in items)
            raise ModelError(f"analyze takes models of one input: example inputs must be one tensor, got ({kinds})")
        return items[0]
    return _example_shape(items)  # type: ignore[arg-type]


def _example_shape(example_inputs: torch.Tensor | Sequence[int]) -> tuple[int, ...]:
    shape = tuple(example_inputs.shape) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    if len(shape) < 1 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ModelError(
            f"example inputs must be a tensor, a tuple of one tensor or a shape with the batch first, got {shape!r}"
        )
    return shape


#: shapes are recorded by a real forward pass on zeros at the batch given, but on at most this many input
#: elements: counting at a huge batch needs no memory for it (the closed form scales the counts)
ANNOTATION_ELEMENTS = 1 << 20


def annotation_batch(shape: Sequence[int]) -> int:
    """The batch at which a model of input ``shape`` (batch first) is traced: the batch given, capped so
    that the zeros hold at most ``ANNOTATION_ELEMENTS`` elements (never below 1)."""
    return max(1, min(shape[0], ANNOTATION_ELEMENTS // max(1, math.prod(shape[1:]))))


#: the batch at which an ``nn.Module`` given to :func:`analyze` is traced first: the closed form counts any batch
#: from its shapes (it refuses every node whose batch dimension it cannot follow), so the forward pass on zeros
#: need not be at the batch asked for; 2, not 1, so that a node whose leading dimension is not the batch (a
#: reduction over it) is not mistaken for a batched one
TRACE_BATCH = 2


def _as_graph(
    model_or_graph: nn.Module | Graph, example: torch.Tensor | tuple[int, ...], batch: int | None = None
) -> Graph:
    """The graph to count: a Graph as given; a module traced and annotated at ``batch`` (default: the
    example's, capped by :func:`annotation_batch`)."""
    shape = _example_shape(example)
    if isinstance(model_or_graph, Graph):
        if tuple(shape[1:]) != model_or_graph.input_shape:
            raise ModelError(
                f"example inputs {shape} do not match the graph's input shape (B, {model_or_graph.input_shape})"
            )
        return model_or_graph
    if isinstance(model_or_graph, nn.Module):
        dtype = example.dtype if isinstance(example, torch.Tensor) else None
        at = annotation_batch(shape) if batch is None else batch
        return Graph.from_module(model_or_graph, shape[1:], batch_size=at, dtype=dtype)
    raise ModelError(f"analyze takes an nn.Module or a Graph, got {type(model_or_graph).__name__}")


def _counted(
    model_or_graph: nn.Module | Graph, example: torch.Tensor | tuple[int, ...], method: Method
) -> tuple[Graph, GraphCounts]:
    """The graph and its counts. A module is first traced at :data:`TRACE_BATCH` (a forward pass on a few
    zeros instead of the whole batch): when the closed form counts that graph, the counts are exact at any
    batch; otherwise (a node without a closed form, a forward that fails at that batch, or ``method``
    dispatch) it is traced again at the example's batch, as before, so every error and count is the one of
    the batch asked for."""
    shape = _example_shape(example)
    plain = not isinstance(example, torch.Tensor) or not example.requires_grad
    if isinstance(model_or_graph, nn.Module) and method != "dispatch" and plain and shape[0] > TRACE_BATCH:
        try:
            small = _frozen(_as_graph(model_or_graph, example, TRACE_BATCH))
        except ModelError:
            small = None
        if small is not None:  # annotated in the example's dtype
            counted = count_closed_form(small, shape[0])
            if counted is not None:
                return small, counted
    graph = _frozen(_as_graph(model_or_graph, example))
    return graph, count(graph, example, method)


def count(graph: Graph, example: torch.Tensor | tuple[int, ...], method: Method = "auto") -> GraphCounts:
    """Per-node counts: closed form from NodeMeta where it is exact (``auto``), else the dispatch counter.

    A shape is counted in the graph's own dtype (:attr:`Graph.input_dtype`); a tensor of that dtype that
    needs no gradient takes the closed form as well.
    """
    shape = _example_shape(example)
    plain = not isinstance(example, torch.Tensor) or (example.dtype == graph.input_dtype and not example.requires_grad)
    if method != "dispatch" and plain:
        counted = count_closed_form(graph, shape[0])
        if counted is not None:
            return counted
    if method == "closed_form":
        raise ModelError("this graph has nodes without an exact closed form; count it with method='dispatch'")
    return count_by_dispatch(graph, example)


def _frozen(graph: Graph) -> Graph:
    """``graph`` with its learned quantizers frozen into the per-element integer formats they stand at
    (``freeze_learned``): what the analysis counts, as the export does; otherwise the quantizers' starting widths
    would be counted."""
    from netcarve.transforms.quantize.learned import freeze_learned, has_learned

    if not has_learned(graph.module):
        return graph
    log.debug("analyze: learned quantizers counted at their current per-element formats (freeze_learned)")
    return freeze_learned(graph).graph


def _ebops(graph: Graph) -> float:
    """The EBOPs of ``graph`` per sample (its fixed-point Linear and convolution layers; the learned quantizer's
    definition, :func:`netcarve.transforms.quantize.learned.ebops`)."""
    from netcarve.transforms.quantize.learned import ebops

    with torch.no_grad():
        return float(ebops(graph))


def analyze(
    model_or_graph: nn.Module | Graph,
    example_inputs: ExampleInputs,
    *,
    convention: Convention = "netcarve",
    method: Method = "auto",
    compare_to: int = 32,
    latency: bool = False,
    latency_runs: int = 100,
    fpga: bool = False,
) -> Report:
    """Params, size, MACs/FLOPs/BitOPs (forward and backward), memory and optionally latency (README: Analyze).

    ``example_inputs`` is a tensor, a tuple of one tensor (``(x,)``, as fvcore and torch's
    ``FlopCounterMode`` take it) or a shape including the batch, e.g. ``(1, 16)``; counts are at that batch
    size. The model runs in its own dtype (its parameters'; a tensor's dtype when one is given), so a
    float64 model counts the same MACs as in float32, with 64-bit sizes and bytes.

    ``params`` are the trainable parameter elements (``requires_grad``); frozen ones are ``frozen_params``
    (both stored: ``size_bits`` covers them all). Parameters of submodules that ``forward`` never calls
    are counted too, in a record of kind ``unused`` per such module (no compute).

    ``convention="mase"`` reproduces the seed lab report's arithmetic. ``method`` chooses the counting
    path (``auto``: closed form where exact, else dispatch; both give identical counts).

    A graph with ``learned`` quantizers is counted at the per-element formats they stand at (frozen, as the
    export freezes it); the given graph is not changed.

    ``fpga=True`` adds alkaid's firmware estimates (``fpga_luts``, ``fpga_latency``; total and per Dense
    layer, :mod:`netcarve.analysis.fpga`); the graph must then be exportable (PassError naming the node).
    """
    if convention not in CONVENTIONS:
        raise ModelError(f"unknown convention {convention!r} (choose {' or '.join(CONVENTIONS)})")
    if method not in METHODS:
        raise ModelError(f"unknown counting method {method!r} (choose {', '.join(METHODS)})")
    example = _example(example_inputs)
    shape = _example_shape(example)
    graph, counts = _counted(model_or_graph, example, method)
    report = build_report(graph, counts, convention, compare_to)
    report = replace(report, total=replace(report.total, ebops=_ebops(graph)))
    if report.uncounted:
        log.info("ops without a formula (not counted): %s", report.uncounted)
    if latency:
        tensor = example if isinstance(example, torch.Tensor) else torch.zeros(shape, dtype=graph.input_dtype)
        report = report.with_latency(measure_latency(graph.module, tensor, runs=latency_runs))
    if fpga:
        from netcarve.analysis.fpga import fpga_costs

        costs = fpga_costs(graph)
        report = report.with_fpga(costs.total_luts, costs.total_latency, costs.per_layer)
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
    """Count params, size, MACs/FLOPs/BitOPs, backward and memory of a graph (README: Analyze); graph unchanged."""
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
