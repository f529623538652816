"""The fixed-point program of a quantized graph: formats, the exact reference, and what cannot be exported."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from netcarve.data.base import DatasetInfo
from netcarve.data.jsc_schema import jsc_info
from netcarve.errors import PassError
from netcarve.export.program import Dense, FixedFormat, MaxPool, Quantize, Relu, build_program, netcarve_forward
from netcarve.ir import Graph
from netcarve.ir.fixedpoint import FixedGrid, fixed_quantize
from netcarve.models import create_model
from netcarve.models.jsc import SeqBlocks
from netcarve.transforms.quantize.api import quantize
from tests.transforms.helpers import settled


def integer(**widths: int) -> dict[str, Any]:
    return {"config": {"name": "integer", **widths}}


#: 8-bit inputs (frac 4), 6-bit weights (frac 4), 8-bit biases (frac 4), 10-bit outputs (frac 4)
UNIFORM = {
    "by": "type",
    "default": integer(
        data_in_width=8, data_in_frac_width=4, weight_width=6, weight_frac_width=4,
        bias_width=8, bias_frac_width=4, data_out_width=10, data_out_frac_width=4,
    ),
}  # fmt: skip


#: hls4ml-jet with every layer its own frac widths (Linear seq_blocks_0/2/4/6, ReLU 1/3/5): a Linear's data_out
#: and the next ReLU's data_in round twice, and ties and overflows are common
JET_PER_LAYER: dict[str, Any] = {
    "by": "name",
    "default": UNIFORM["default"],
    "seq_blocks_0": integer(data_in_width=10, data_in_frac_width=6, weight_width=4, weight_frac_width=3,
                            bias_width=6, bias_frac_width=3, data_out_width=12, data_out_frac_width=5),
    "seq_blocks_2": integer(data_in_width=7, data_in_frac_width=3, weight_width=8, weight_frac_width=6,
                            bias_width=5, bias_frac_width=2, data_out_width=8, data_out_frac_width=2),
}  # fmt: skip


#: jsc-toy: BatchNorm 0 (software preprocessing), ReLU 1/4/7/10, Linear 2/5/8 each followed by a BatchNorm
#: (3/6/9), folded into it on export. "modes": truncate weights, nearest_up biases and BatchNorm outputs,
#: a wrapping BatchNorm output, a quantized γ/β (seq_blocks_6); "narrow": few bits, nearest_even, a
#: truncating wrapping BatchNorm output. Together: nearest_even, nearest_up, truncate, saturate and wrap.
TOY_MIXES: dict[str, dict[str, Any]] = {
    "modes": {
        "by": "name",
        "default": UNIFORM["default"],
        "seq_blocks_2": integer(data_in_width=8, data_in_frac_width=4, weight_width=6, weight_frac_width=4,
                                bias_width=8, bias_frac_width=4, data_out_width=10, data_out_frac_width=4,
                                weight_round="truncate", bias_round="nearest_up"),
        "seq_blocks_3": integer(data_out_width=8, data_out_frac_width=3, data_out_round="nearest_up",
                                data_out_overflow="wrap"),
        "seq_blocks_5": integer(data_in_width=7, data_in_frac_width=3, weight_width=5, weight_frac_width=3,
                                bias_width=6, bias_frac_width=3, data_out_width=9, data_out_frac_width=3,
                                data_in_round="truncate"),
        "seq_blocks_6": integer(weight_width=6, weight_frac_width=4, bias_width=6, bias_frac_width=3,
                                data_out_width=8, data_out_frac_width=2, data_out_round="truncate"),
        "seq_blocks_10": integer(data_in_width=8, data_in_frac_width=3, data_out_width=6, data_out_frac_width=2,
                                 data_out_round="truncate"),
    },
    "narrow": {
        "by": "name",
        "default": integer(data_in_width=5, data_in_frac_width=2, weight_width=4, weight_frac_width=2,
                           bias_width=4, bias_frac_width=2, data_out_width=7, data_out_frac_width=2),
        "seq_blocks_3": integer(data_out_width=6, data_out_frac_width=2),
        "seq_blocks_9": integer(data_out_width=5, data_out_frac_width=1, data_out_round="truncate",
                                data_out_overflow="wrap"),
    },
}  # fmt: skip


#: digits-cnn (Unflatten 0, Conv2d 1, BatchNorm2d 2, ReLU 3, MaxPool2d 4, Conv2d 5, ReLU 6, AdaptiveAvgPool2d 7,
#: Flatten 8, Linear 9) quantized by type: every conv and linear integer-quantized (input, weight, bias,
#: output) and every ReLU (input, output); the BatchNorm2d stays float and is folded into Conv2d 1. "wide":
#: ties and saturation at the ReLUs' narrower outputs; "narrow": few bits, truncate and nearest_up, a
#: wrapping linear output.
CNN_MIXES: dict[str, dict[str, Any]] = {
    "wide": {
        "by": "type",
        "conv2d": integer(data_in_width=8, data_in_frac_width=3, weight_width=6, weight_frac_width=4,
                          bias_width=8, bias_frac_width=4, data_out_width=10, data_out_frac_width=3),
        "relu": integer(data_in_width=8, data_in_frac_width=3, data_out_width=6, data_out_frac_width=2),
        "linear": integer(data_in_width=8, data_in_frac_width=4, weight_width=6, weight_frac_width=4,
                          bias_width=8, bias_frac_width=4, data_out_width=10, data_out_frac_width=4),
    },
    "narrow": {
        "by": "type",
        "conv2d": integer(data_in_width=5, data_in_frac_width=2, weight_width=4, weight_frac_width=2,
                          bias_width=5, bias_frac_width=3, data_out_width=7, data_out_frac_width=2,
                          weight_round="truncate", data_out_round="nearest_up"),
        "relu": integer(data_in_width=6, data_in_frac_width=3, data_out_width=4, data_out_frac_width=2,
                        data_out_round="truncate"),
        "linear": integer(data_in_width=6, data_in_frac_width=3, weight_width=4, weight_frac_width=2,
                          bias_width=4, bias_frac_width=2, data_out_width=6, data_out_frac_width=3,
                          data_out_overflow="wrap"),
    },
}  # fmt: skip
DIGITS = DatasetInfo("digits", 64, 10, tuple(str(i) for i in range(10)))


def quantized_cnn(mix: str, seed: int = 0) -> Graph:
    """digits-cnn (8×8 images as 64 features) quantized by ``CNN_MIXES[mix]``, with weights uniform in ±1 and
    biases in ±0.5 (seeded: wider than the default init, so that narrow formats keep the network alive); its
    BatchNorm2d has random γ, β and running statistics, so folding it changes the first conv's weights."""
    torch.manual_seed(seed)
    model = create_model("digits-cnn", DIGITS)
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.uniform_(layer.weight, -1, 1)
            nn.init.uniform_(layer.bias, -0.5, 0.5)
    module = settled(model, seed, in_shape=(64,), passes=30)
    return quantize(module, CNN_MIXES[mix], input_shape=(64,))


def quantized(model: str, config: dict[str, Any], seed: int = 0) -> Graph:
    """``model`` quantized by ``config``, in eval mode; its BatchNorms get random affine parameters and running
    statistics (seeded), so that folding them changes the weights."""
    torch.manual_seed(seed)
    module = settled(create_model(model, jsc_info()), seed, passes=30)
    return quantize(module, config, input_shape=(16,))


def test_fixed_format_by_hand() -> None:
    """signed <6,2> (frac 4): step 1/16, range [−2, 2 − 1/16]. 0.03125 = half a step: nearest_even → 0,
    nearest_up → 1/16, truncate → 0; −0.03125: 0, 0, −1/16. 5.0 saturates to 1.9375 or wraps: k = 80 →
    ((80 + 32) mod 64) − 32 = 16 → 1.0. Unsigned <4,4> (frac 0): 0 … 15; −1 saturates to 0."""
    x = np.array([0.03125, -0.03125, 5.0])
    assert FixedFormat(True, 6, 4).quantize(x).tolist() == [0.0, -0.0, 1.9375]
    assert FixedFormat(True, 6, 4, "nearest_up").quantize(x).tolist() == [0.0625, 0.0, 1.9375]
    assert FixedFormat(True, 6, 4, "truncate").quantize(x).tolist() == [0.0, -0.0625, 1.9375]
    assert FixedFormat(True, 6, 4, overflow="wrap").quantize(x)[2] == 1.0
    assert FixedFormat(False, 4, 0).quantize(np.array([-1.0, 3.4, 20.0])).tolist() == [0.0, 3.0, 15.0]
    assert FixedFormat(True, 6, 4).kif == (1, 1, 4) and FixedFormat(False, 6, 4).kif == (0, 2, 4)
    assert FixedFormat(True, 6, 4).describe() == "fixed<6,2>"
    assert FixedFormat(False, 8, 4, "truncate", "wrap").describe() == "ufixed<8,4,truncate,wrap>"


@pytest.mark.parametrize("round_mode", ["nearest_even", "nearest_up", "truncate"])
@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
@pytest.mark.parametrize("signed", [True, False])
def test_fixed_format_is_the_one_quantizer(round_mode: str, overflow: str, signed: bool) -> None:
    """The export's reference quantization (numpy, float64) equals the one definition (torch) bit for bit:
    <5,2> on k/16 for k = −400 … 400 (ties at half a step of 1/4, and overflows on both sides), and, per
    element, random formats (width 1 … 10, frac −1 … 5) against one call with a per-element grid."""
    x = np.arange(-400, 401) / 16.0
    fmt = FixedFormat(signed, 5, 2, round_mode, overflow)
    one = fixed_quantize(torch.from_numpy(x), FixedGrid.of(5, 2, signed), round_mode, overflow)
    torch.testing.assert_close(torch.from_numpy(fmt.quantize(x)), one, rtol=0, atol=0)
    rng = np.random.default_rng(len(round_mode) + len(overflow) + signed)
    widths, fracs = rng.integers(1, 11, x.size), rng.integers(-1, 6, x.size)
    grid = FixedGrid.of(torch.from_numpy(widths), torch.from_numpy(fracs), signed, dtype=torch.float64)
    per_element = fixed_quantize(torch.from_numpy(x), grid, round_mode, overflow)
    formats = [FixedFormat(signed, int(w), int(f), round_mode, overflow) for w, f in zip(widths, fracs, strict=True)]
    expected = [fmt.quantize(v) for fmt, v in zip(formats, x, strict=True)]
    torch.testing.assert_close(per_element, torch.tensor(np.array(expected)), rtol=0, atol=0)


def test_fixed_format_refuses_an_unknown_mode() -> None:
    with pytest.raises(PassError, match="unknown round mode 'half_odd'"):
        FixedFormat(True, 8, 4, "half_odd")


@pytest.mark.parametrize("model", ["hls4ml-jet", "jsc-three-linear-layers"])
def test_reference_equals_netcarve_bit_for_bit(model: str) -> None:
    """The program's float64 reference and netcarve's own fake-quantized forward agree exactly (max |diff|
    = 0) on 2,000 rows, and the port values lie on the port's grid."""
    graph = quantized(model, UNIFORM)
    program = build_program(graph)
    x = torch.randn(2000, 16) * 3
    port = program.port_inputs(x)
    np.testing.assert_array_equal(port, program.port.quantize(port))
    np.testing.assert_array_equal(program.reference(port), netcarve_forward(graph, x))


def test_program_of_hls4ml_jet() -> None:
    """hls4ml-jet: 4 Linear + 3 ReLU. The port is the first Linear's data_in quantizer, so that Linear adds
    Dense and its data_out quantizer (2 steps); the other Linears add data_in, Dense, data_out (3 each) and
    each ReLU its data_in quantizer, Relu and its data_out quantizer (3 each): 2 + 3·3 + 3·3 = 20 steps."""
    program = build_program(quantized("hls4ml-jet", UNIFORM))
    assert program.port == FixedFormat(True, 8, 4)
    assert (program.in_features, program.out_features) == (16, 5)
    assert len(program.steps) == 20
    assert [type(s) for s in program.steps[:5]] == [Dense, Quantize, Quantize, Relu, Quantize]
    relu_in = program.steps[2]
    assert isinstance(relu_in, Quantize) and relu_in.fmt == FixedFormat(False, 8, 4)  # unsigned after a ReLU
    assert program.precisions["seq_blocks_0"]["weight"] == "fixed<6,2>"


def test_what_cannot_be_exported_is_named() -> None:
    """A float layer and a BatchNorm inside the network that follows a ReLU (it cannot be folded into a
    Linear) are one-line errors naming the node."""
    partial = {"by": "name", "seq_blocks_2": integer(data_in_width=8, weight_width=6, bias_width=8)}
    with pytest.raises(PassError, match=r"seq_blocks_0, seq_blocks_4, seq_blocks_6 are not fixed-point"):
        build_program(quantized("hls4ml-jet", partial))
    torch.manual_seed(0)
    module = settled(SeqBlocks(nn.Linear(16, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 5)))
    message = (
        r"'seq_blocks_2' \(batch_norm1d\) is inside the network and cannot be folded into a Linear or Conv "
        r"\(its input 'seq_blocks_1' is not a Linear or Conv\)"
    )
    with pytest.raises(PassError, match=message) as info:
        build_program(quantize(module, UNIFORM, input_shape=(16,)))
    assert "\n" not in str(info.value)


def test_batchnorm_after_a_linear_is_folded() -> None:
    """jsc-toy ("modes" mix): its BatchNorms 3, 6 and 9 fold into Linears 2, 5 and 8; BatchNorm 0 stays input
    preprocessing. The program is the folded graph's: Linear 2's data_out is BatchNorm 3's quantizer
    (8 bits, frac 3: fixed<8,5>, nearest_up, wrap) and no BatchNorm is left in the precisions. The reference
    equals netcarve's forward of the folded graph bit for bit, not the unfolded one's (requantized weights);
    the graph given is not changed."""
    graph = quantized("jsc-toy", TOY_MIXES["modes"], seed=1)
    names = graph.node_names()
    program = build_program(graph)
    assert [(f.batch_norm, f.into) for f in program.folded] == [
        ("seq_blocks_3", "seq_blocks_2"), ("seq_blocks_6", "seq_blocks_5"), ("seq_blocks_9", "seq_blocks_8"),
    ]  # fmt: skip
    assert program.unfolded is graph and graph.node_names() == names and program.graph is not graph
    assert program.preprocess == ["seq_blocks_0"] and program.port == FixedFormat(False, 8, 4)
    assert program.precisions["seq_blocks_2"]["data_out"] == "fixed<8,5,nearest_up,wrap>"
    assert not {"seq_blocks_3", "seq_blocks_6", "seq_blocks_9"} & set(program.precisions)
    torch.manual_seed(2)
    x = torch.randn(2000, 16) * 3
    reference = program.reference(program.port_inputs(x))
    np.testing.assert_array_equal(reference, netcarve_forward(program.graph, x))
    assert not np.array_equal(reference, netcarve_forward(graph, x))


def test_conv_is_its_unrolled_matrix_by_hand() -> None:
    """A 1-channel 3×3 image x0 … x8 (row-major, the flattened input) and a 2×2 kernel [[1, 2], [3, 4]] with
    bias 0.5, no padding, stride 1: the 2×2 outputs are y(r, c) = 1·x(r, c) + 2·x(r, c+1) + 3·x(r+1, c) +
    4·x(r+1, c+1) + 0.5, so the constant matrix (4 × 9, outputs row-major) is

        y00: [1 2 0 | 3 4 0 | 0 0 0]        y01: [0 1 2 | 0 3 4 | 0 0 0]
        y10: [0 0 0 | 1 2 0 | 3 4 0]        y11: [0 0 0 | 0 1 2 | 0 3 4]

    and the bias [0.5] at each of the 4 positions. The Unflatten before it is a reshape (no step): the port is
    the conv's data_in, then Dense and the conv's data_out. On x = 1 … 9: y00 = 1 + 4 + 12 + 20 + 0.5 = 37.5."""
    conv = nn.Conv2d(1, 1, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
        conv.bias.fill_(0.5)
    config = {"by": "type", "default": integer(data_in_width=8, data_in_frac_width=2, weight_width=6,
                                               weight_frac_width=2, bias_width=6, bias_frac_width=2)}  # fmt: skip
    graph = quantize(SeqBlocks(nn.Unflatten(1, (1, 3, 3)), conv).eval(), config, input_shape=(9,))
    program = build_program(graph)
    assert [type(s) for s in program.steps] == [Dense]  # no data_out quantizer in this config
    (dense,) = program.layers()
    assert dense.weight.tolist() == [
        [1, 2, 0, 3, 4, 0, 0, 0, 0],
        [0, 1, 2, 0, 3, 4, 0, 0, 0],
        [0, 0, 0, 1, 2, 0, 3, 4, 0],
        [0, 0, 0, 0, 1, 2, 0, 3, 4],
    ]
    assert dense.bias is not None and dense.bias.tolist() == [0.5] * 4
    assert (program.in_features, program.out_features) == (9, 4)
    x = torch.arange(1.0, 10.0)[None]
    assert program.reference(program.port_inputs(x)).tolist() == [[37.5, 47.5, 67.5, 77.5]]
    np.testing.assert_array_equal(program.reference(program.port_inputs(x)), netcarve_forward(graph, x))


def test_program_of_digits_cnn() -> None:
    """digits-cnn: the BatchNorm2d is folded into Conv2d 1; Unflatten and Flatten are reshapes (no steps). The
    first conv is a 512 × 64 matrix (8 channels × 8×8 positions over the 8×8 input) with its bias repeated
    per position; the max pool takes 128 groups of 4 (8 channels × 4×4 windows of 2×2); the second conv is
    256 × 128 and the adaptive average pool (4×4 → 2×2) a 64 × 256 matrix of 1/4s with one per window entry.
    The reference equals netcarve's forward of the folded graph bit for bit on 2,000 rows."""
    program = build_program(quantized_cnn("wide"))
    assert [(f.batch_norm, f.into) for f in program.folded] == [("seq_blocks_2", "seq_blocks_1")]
    assert program.port == FixedFormat(True, 8, 3) and (program.in_features, program.out_features) == (64, 10)
    kinds = [(type(s).__name__, s.node) for s in program.steps if not isinstance(s, Quantize)]
    assert kinds == [
        ("Dense", "seq_blocks_1"), ("Relu", "seq_blocks_3"), ("MaxPool", "seq_blocks_4"), ("Dense", "seq_blocks_5"),
        ("Relu", "seq_blocks_6"), ("Dense", "seq_blocks_7"), ("Dense", "seq_blocks_9"),
    ]  # fmt: skip
    conv1, conv2, pool, linear = program.layers()
    assert conv1.weight.shape == (512, 64) and conv2.weight.shape == (256, 128) and linear.weight.shape == (10, 64)
    assert conv1.bias is not None and conv1.bias.reshape(8, 64).std(axis=1).max() == 0  # one bias per channel
    assert pool.weight.shape == (64, 256) and set(np.unique(pool.weight)) == {0.0, 0.25}
    assert (pool.weight != 0).sum(axis=1).tolist() == [4] * 64 and pool.bias is None
    max_pool = next(s for s in program.steps if isinstance(s, MaxPool))
    assert max_pool.groups.shape == (128, 4) and max_pool.groups[0].tolist() == [0, 1, 8, 9]
    assert sorted(max_pool.groups.ravel().tolist()) == list(range(512))  # each input in exactly one window
    torch.manual_seed(2)
    x = torch.randn(2000, 64) * 3
    reference = program.reference(program.port_inputs(x))
    assert len(np.unique(reference)) >= 10  # not a dead network
    np.testing.assert_array_equal(reference, netcarve_forward(program.graph, x))


def test_pools_with_padding_and_power_of_two_divisors() -> None:
    """Linear(16, 16) viewed as a 1×4×4 image; MaxPool2d(2, padding 1) has 3×3 windows cut by the padding:
    the corner one holds x0 alone (its group repeats it), the center one x5, x6, x9, x10. AvgPool2d((1, 2),
    padding (0, 1)) counts the padding (divisor 2, weights 1/2). The reference equals netcarve's forward bit
    for bit."""
    module = SeqBlocks(
        nn.Linear(16, 16), nn.Unflatten(1, (1, 4, 4)), nn.MaxPool2d(2, padding=1), nn.AvgPool2d((1, 2), padding=(0, 1)),
        nn.Flatten(), nn.Linear(6, 3),
    )  # fmt: skip
    graph = quantize(module.eval(), UNIFORM, input_shape=(16,))
    program = build_program(graph)
    max_pool = next(s for s in program.steps if isinstance(s, MaxPool))
    assert max_pool.groups.shape == (9, 4) and max_pool.groups[0].tolist() == [0, 0, 0, 0]
    assert max_pool.groups[4].tolist() == [5, 6, 9, 10]
    _, avg_pool, _ = program.layers()
    assert avg_pool.node == "seq_blocks_3" and set(np.unique(avg_pool.weight)) == {0.0, 0.5}
    torch.manual_seed(4)
    x = torch.randn(2000, 16) * 3
    np.testing.assert_array_equal(program.reference(program.port_inputs(x)), netcarve_forward(graph, x))


def test_average_by_three_is_refused() -> None:
    """AvgPool1d(3) divides by 3, which no fixed-point grid holds: a one-line PassError naming the node; the
    same model with AvgPool1d(2) exports (its reference equals netcarve's forward)."""

    def model(size: int) -> SeqBlocks:
        return SeqBlocks(
            nn.Linear(16, 6), nn.Unflatten(1, (1, 6)), nn.AvgPool1d(size), nn.Flatten(), nn.Linear(6 // size, 2)
        )

    with pytest.raises(PassError, match=r"node 'seq_blocks_2' \(avg_pool1d\) divides by 3, not a power of two") as info:
        build_program(quantize(model(3).eval(), UNIFORM, input_shape=(16,)))
    assert "\n" not in str(info.value)
    graph = quantize(model(2).eval(), UNIFORM, input_shape=(16,))
    x = torch.randn(500, 16) * 3
    program = build_program(graph)
    np.testing.assert_array_equal(program.reference(program.port_inputs(x)), netcarve_forward(graph, x))
