"""The fixed-point program of a quantized graph: formats, the exact reference, and what cannot be exported."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from netcarve.data.jsc_schema import jsc_info
from netcarve.errors import PassError
from netcarve.export.program import Dense, FixedFormat, Quantize, Relu, build_program, netcarve_forward
from netcarve.ir import Graph
from netcarve.models import create_model
from netcarve.transforms.quantize.api import quantize


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


def quantized(model: str, config: dict[str, Any], seed: int = 0) -> Graph:
    torch.manual_seed(seed)
    module = create_model(model, jsc_info())
    module.eval()
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
    """A float layer, a BatchNorm inside the network (jsc-toy) and a float input are one-line errors."""
    partial = {"by": "name", "seq_blocks_2": integer(data_in_width=8, weight_width=6, bias_width=8)}
    with pytest.raises(PassError, match=r"seq_blocks_0, seq_blocks_4, seq_blocks_6 are not fixed-point"):
        build_program(quantized("hls4ml-jet", partial))
    with pytest.raises(PassError, match=r"'seq_blocks_3' \(batch_norm1d\) is inside the network"):
        build_program(quantized("jsc-toy", UNIFORM))
