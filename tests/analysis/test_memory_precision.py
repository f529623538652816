"""Activation memory (liveness over fx order) and per-layer bit widths, hand-derived in each docstring."""

from __future__ import annotations

import pytest

from netcarve import analyze
from netcarve.data.base import DatasetInfo
from netcarve.ir import Graph, Precision
from netcarve.models import create_model
from tests.analysis.nets import ConvResidual, Diamond

JSC = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))
LINEARS = ("seq_blocks_2", "seq_blocks_5", "seq_blocks_8")


@pytest.mark.parametrize("batch", [1, 256])
def test_peak_activation_of_a_chain(batch: int) -> None:
    """jsc-s, float32 bytes per sample: input 64; BN16 64, ReLU 64, L(16,64) 256, BN64 256, ReLU 256,
    L(64,32) 128, ReLU 128, L 128, ReLU 128, L 128, ReLU 128, L(32,5) 20, BN5 20, ReLU 20.
    In a chain each step holds its input and its output: the largest is BN64 (256 + 256 = 512).
    Sum of node outputs: 64·2 + 256·3 + 128·6 + 20·3 = 1724."""
    t = analyze(create_model("jsc-s", JSC), (batch, 16)).total
    assert t.peak_activation_bytes == 512 * batch
    assert t.activation_bytes == 1724 * batch


def test_peak_activation_of_a_branch_and_merge() -> None:
    """Diamond, bytes per sample: x 64, a 128, relu 128, b 128, add 128 (fx order x, a, relu, b, add).
    x stays live until b reads it: at a: 64+128 = 192; at relu: 64+128+128 = 320 (a freed after);
    at b: 64+128+128 = 320 (x freed after); at add: 128+128+128 = 384 → peak 384; at B = 4: 1536."""
    assert analyze(Diamond(), (4, 16)).total.peak_activation_bytes == 4 * 384


def test_peak_activation_of_a_residual() -> None:
    """ConvResidual, bytes per sample: x, conv, bn, add, relu are 4·10 floats = 160 each. x is live until
    the add: at bn x + conv + bn = 480; at add x + bn + add = 480 → peak 480."""
    assert analyze(ConvResidual(), (1, 4, 10)).total.peak_activation_bytes == 480


def _jsc_toy_int8() -> Graph:
    graph = Graph.from_module(create_model("jsc-toy", JSC), (16,))
    int8 = Precision("integer", 8, 4)
    for name in LINEARS:
        graph.set_precision(name, {"data_in": int8, "weight": int8, "bias": int8})
    return graph


@pytest.mark.parametrize("method", ["closed_form", "dispatch"])
def test_bit_widths_from_node_precision(method: str) -> None:
    """jsc-toy, Linear nodes at 8 bits (data_in, weight, bias), B = 1.
    size_bits: Linear params 136+72+45 = 253 at 8 bits = 2024; BN params 32+16+16+10 = 74 at 32 = 2368
    → 4392 bits, model_size 549 bytes; average_bitwidth 4392/327 ≈ 13.43, memory_density 32·327/4392.
    bitops: MACs 232·8·8 = 14848, bias adds 21·8 = 168, elementwise (BN, ReLU) 185·32 = 5920 → 20936.
    seq_blocks_2: size 136·8 = 1088 bits, bitops 128·64 + 8·8 = 8256. flops do not depend on bits: 670.
    mase bitops stay 32 per computation: 32·417 = 13344."""
    graph = _jsc_toy_int8()
    report = analyze(graph, (1, 16), method=method)  # type: ignore[arg-type]
    t = report.total
    assert (t.size_bits, t.model_size, t.params) == (4392, 549, 327)
    assert t.average_bitwidth == pytest.approx(4392 / 327)
    assert t.memory_density == pytest.approx(32 * 327 / 4392)
    assert (t.bitops, t.flops) == (20936, 670)
    layer = report.layer("seq_blocks_2")
    assert (layer.size_bits, layer.bitops) == (1088, 8256)
    assert "weight=integer(8,4)" in layer.precision
    assert analyze(graph, (1, 16), convention="mase", method=method).total.bitops == 13344  # type: ignore[arg-type]


def test_elementwise_bits_and_output_precision() -> None:
    """On top of the int8 Linears: ReLU seq_blocks_4 with data_in 4 bits costs 8·4 = 32 bitops instead of
    8·32 = 256 (total 20936 − 224 = 20712); seq_blocks_8 with data_out 8 bits stores its 5 outputs in
    5 bytes instead of 20."""
    graph = _jsc_toy_int8()
    graph.set_precision("seq_blocks_4", {"data_in": Precision("integer", 4, 2)})
    meta = graph.meta("seq_blocks_8")
    graph.set_precision("seq_blocks_8", {**meta.precision, "data_out": Precision("integer", 8, 4)})
    report = analyze(graph, (1, 16))
    assert report.layer("seq_blocks_4").bitops == 32
    assert report.total.bitops == 20712
    assert report.layer("seq_blocks_8").output_bytes == 5
