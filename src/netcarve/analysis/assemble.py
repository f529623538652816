"""Turn per-node counts, storage and output shapes into a :class:`Report` (README: Analyze)."""

from __future__ import annotations

import math

import torch
import torch.fx as fx

from netcarve.analysis.counter import GraphCounts
from netcarve.analysis.counts import Convention, OpCounts, derive, merge_uncounted, operand_bits
from netcarve.analysis.elements import Widths, element_widths, summary
from netcarve.analysis.memory import output_bytes, peak_live_bytes
from netcarve.analysis.params import EMPTY, NodeStorage, graph_storage
from netcarve.analysis.records import LAYER_METRICS, LayerRecord, Report, TotalRecord
from netcarve.ir.graph import Graph
from netcarve.ir.meta import NodeMeta, TensorMeta


def _float_text(dtype: str | None) -> str:
    """``float64`` for a float64 tensor; ``float32`` for float32 and anything not floating point."""
    return dtype if dtype is not None and dtype.startswith(("float", "bfloat")) else "float32"


def _precision_text(meta: NodeMeta) -> str:
    quantized = [f"{op}={p.describe()}" for op, p in meta.precision.items() if not p.is_float or p.width != 32]
    return " ".join(quantized) if quantized else _float_text(meta.output.dtype if meta.output else None)


def _layer(
    meta: NodeMeta,
    counts: OpCounts,
    held: NodeStorage,
    tensors: tuple[TensorMeta, ...],
    nbytes: int,
    convention: Convention,
    widths: Widths,
    scalar: dict[str, tuple[int, int]],
) -> LayerRecord:
    derived = derive(counts, meta, convention, widths)
    elements = summary(widths, scalar)
    return LayerRecord(
        name=meta.name,
        kind=meta.kind,
        target=meta.target,
        output_shape=tensors[0].shape if tensors else (),
        precision=_precision_text(meta),
        params=held.params,
        frozen_params=held.frozen_params,
        buffers=held.buffers,
        size_bits=held.size_bits,
        buffer_bits=held.buffer_bits,
        macs=counts.macs,
        flops=derived.flops,
        bitops=derived.bitops,
        backward_dgrad_macs=counts.dgrad_macs,
        backward_wgrad_macs=counts.wgrad_macs,
        backward_flops=derived.backward_flops,
        output_bytes=nbytes,
        uncounted=dict(counts.uncounted),
        mean_bits=elements.mean_bits if elements else None,
        max_bits=elements.max_bits if elements else None,
        pruned_share=elements.pruned_share if elements else None,
    )


def _scalar_params(graph: Graph, node: fx.Node) -> dict[str, tuple[int, int]]:
    """operand → (bits, elements) of the node's weight and bias at their one precision."""
    if node.op != "call_module":
        return {}
    module, meta = graph.submodule(node), graph.meta(node)
    out = {}
    for operand in ("weight", "bias"):
        value = getattr(module, operand, None)
        if isinstance(value, torch.Tensor):
            out[operand] = (operand_bits(meta, operand), value.numel())
    return out


def _unused(name: str, target: str, held: NodeStorage, dtype: str) -> LayerRecord:
    """A module (or top-level tensor) that ``forward`` never uses: what it holds, no compute."""
    zero = {key: 0 for key in LAYER_METRICS}
    storage = {key: getattr(held, key) for key in ("params", "frozen_params", "buffers", "size_bits", "buffer_bits")}
    return LayerRecord(name=name, kind="unused", target=target, output_shape=(), precision=dtype, **{**zero, **storage})


def _total(layers: list[LayerRecord], peak: int, compare_to: int) -> TotalRecord:
    sums = {key: sum(getattr(r, key) for r in layers) for key in LAYER_METRICS}
    stored = sums["params"] + sums["frozen_params"]
    average = sums["size_bits"] / stored if stored else 0.0
    return TotalRecord(
        params=sums["params"],
        frozen_params=sums["frozen_params"],
        buffers=sums["buffers"],
        size_bits=sums["size_bits"],
        buffer_bits=sums["buffer_bits"],
        model_size=math.ceil(sums["size_bits"] / 8),
        macs=sums["macs"],
        flops=sums["flops"],
        bitops=sums["bitops"],
        backward_dgrad_macs=sums["backward_dgrad_macs"],
        backward_wgrad_macs=sums["backward_wgrad_macs"],
        backward_flops=sums["backward_flops"],
        activation_bytes=sums["output_bytes"],
        peak_activation_bytes=peak,
        average_bitwidth=average,
        memory_density=compare_to / average if average else 0.0,
    )


def build_report(graph: Graph, counted: GraphCounts, convention: Convention, compare_to: int = 32) -> Report:
    """One LayerRecord per node (placeholders and the output excepted), one of kind ``unused`` per module
    whose tensors no node uses, and the totals.

    Layers with per-element formats also get the mean and largest width and pruned share of their parameters
    (:mod:`netcarve.analysis.elements`). ``average_bitwidth`` is size_bits / (params + frozen_params) (0.0 for
    a model without parameters, whose
    ``memory_density`` is then 0.0 too); ``activation_bytes`` is the sum of the layers' output bytes.
    """
    storage, unused = graph_storage(graph)
    nbytes: dict[str, int] = {}
    layers: list[LayerRecord] = []
    for node in graph.module.graph.nodes:
        if node.op == "output":
            continue
        meta = graph.meta(node)
        tensors = counted.outputs.get(node.name, ()) if node.op != "get_attr" else ()
        nbytes[node.name] = output_bytes(meta, tensors)
        if node.op != "placeholder":
            counts = counted.counts.get(node.name) or OpCounts()
            held = storage.get(node.name, EMPTY)
            widths = element_widths(graph, node)
            scalar = _scalar_params(graph, node) if widths else {}
            layers.append(_layer(meta, counts, held, tensors, nbytes[node.name], convention, widths, scalar))
    for name, (target, held, dtype) in unused.items():
        layers.append(_unused(name, target, held, dtype))
    total = _total(layers, peak_live_bytes(graph.module.graph, nbytes), compare_to)
    uncounted = merge_uncounted(counted.counts)
    return Report(counted.batch_size, convention, counted.method, tuple(layers), total, uncounted)
