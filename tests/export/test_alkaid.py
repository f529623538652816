"""The alkaid backend: traced logic equals the program's exact reference and netcarve's forward bit for bit."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from netcarve.analysis.fpga import fpga_costs, program_digest
from netcarve.export.backends import BACKENDS, ExportOptions
from netcarve.export.program import Dense, FixedFormat, MaxPool, Quantize, build_program, netcarve_forward
from tests.export.test_program import CNN_MIXES, JET_PER_LAYER, TOY_MIXES, UNIFORM, integer, quantized, quantized_cnn

pytest.importorskip("alkaid")

from alkaid.trace import FVariable, FVArray, FVArrayInput, trace
from alkaid.trace.ops import quantize as alkaid_quantize
from alkaid.types import CombLogic

from netcarve.export.alkaid import CLOCK_PERIOD_NS, package_version, quantize_traced, trace_program

#: per-layer mixes of hls4ml-jet (Linear seq_blocks_0/2/4/6, ReLU 1/3/5); data_out frac widths below the
#: accumulators' (data_in frac + weight frac) make ties and overflows common
JET_MIXES = {
    "wide": JET_PER_LAYER,
    "narrow": {
        "by": "name",
        "default": integer(data_in_width=6, data_in_frac_width=3, weight_width=5, weight_frac_width=4,
                           bias_width=5, bias_frac_width=3, data_out_width=6, data_out_frac_width=2),
        "seq_blocks_3": integer(data_in_width=4, data_in_frac_width=2, data_out_width=5, data_out_frac_width=3),
        "seq_blocks_4": integer(data_in_width=5, data_in_frac_width=2, weight_width=4, weight_frac_width=4,
                                bias_width=4, bias_frac_width=2, data_out_width=7, data_out_frac_width=1),
    },
    "modes": {
        "by": "name",
        "default": integer(data_in_width=8, data_in_frac_width=4, weight_width=6, weight_frac_width=4,
                           bias_width=8, bias_frac_width=4, data_out_width=8, data_out_frac_width=2),
        "seq_blocks_0": integer(data_in_width=8, data_in_frac_width=4, weight_width=6, weight_frac_width=4,
                                bias_width=8, bias_frac_width=4, data_out_width=6, data_out_frac_width=1,
                                data_out_round="truncate", data_out_overflow="wrap"),
        "seq_blocks_2": integer(data_in_width=7, data_in_frac_width=3, weight_width=5, weight_frac_width=4,
                                bias_width=6, bias_frac_width=3, data_out_width=7, data_out_frac_width=2,
                                data_in_round="truncate", data_out_round="nearest_up"),
        "seq_blocks_4": integer(data_in_width=6, data_in_frac_width=2, weight_width=5, weight_frac_width=3,
                                bias_width=6, bias_frac_width=3, data_out_width=5, data_out_frac_width=0,
                                data_in_round="nearest_up", data_out_overflow="wrap"),
    },
}  # fmt: skip

#: jsc-three-linear-layers: BatchNorm 0 (software preprocessing), ReLU 1/3/5/7, Linear 2/4/6
JSC_MIXES = {
    "wide": {
        "by": "name",
        "default": UNIFORM["default"],
        "seq_blocks_4": integer(data_in_width=10, data_in_frac_width=5, weight_width=8, weight_frac_width=7,
                                bias_width=6, bias_frac_width=3, data_out_width=9, data_out_frac_width=3),
    },
    "narrow": {
        "by": "name",
        "default": integer(data_in_width=5, data_in_frac_width=2, weight_width=3, weight_frac_width=2,
                           bias_width=4, bias_frac_width=2, data_out_width=6, data_out_frac_width=1),
        "seq_blocks_1": integer(data_in_width=6, data_in_frac_width=3, data_out_width=6, data_out_frac_width=3),
        "seq_blocks_6": integer(data_in_width=4, data_in_frac_width=1, weight_width=4, weight_frac_width=3,
                                bias_width=3, bias_frac_width=1, data_out_width=8, data_out_frac_width=2,
                                data_out_round="truncate", data_out_overflow="wrap"),
    },
}  # fmt: skip

MIXES = {"hls4ml-jet": JET_MIXES, "jsc-three-linear-layers": JSC_MIXES, "jsc-toy": TOY_MIXES}
CASES = [(model, mix) for model, mixes in MIXES.items() for mix in mixes]


@pytest.mark.parametrize(("model", "mix"), CASES)
def test_trace_is_bit_exact(model: str, mix: str) -> None:
    """On 2,000 rows (σ = 3, so the port and narrow layers saturate), alkaid's interpreter, the program's
    float64 reference and netcarve's fake-quantized forward agree exactly: max |diff| = 0. jsc-toy's
    BatchNorms are folded: its firmware is the folded, requantized graph (program.graph) bit for bit."""
    graph = quantized(model, MIXES[model][mix], seed=1)
    program = build_program(graph)
    assert (len(program.folded) == 3) == (model == "jsc-toy")
    torch.manual_seed(2)
    x = torch.randn(2000, 16) * 3
    port = program.port_inputs(x)
    logic = trace_program(program).predict(port)
    reference = program.reference(port)
    assert np.abs(reference).max() > 0  # not a dead network
    np.testing.assert_array_equal(logic, reference)
    np.testing.assert_array_equal(logic, netcarve_forward(program.graph, x))


@pytest.mark.parametrize("round_mode", ["nearest_even", "nearest_up", "truncate"])
@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
@pytest.mark.parametrize("signed", [True, False])
def test_quantize_modes_on_every_grid_point(round_mode: str, overflow: str, signed: bool) -> None:
    """The values k/16, k = −192 … 191 (−12 … 11.9375) on a signed <10,6> port (frac 4), quantized to 4 bits
    with frac 1 (step 1/2, so every value with k ≡ 4 mod 8 is a tie, and the range −4 … 3.5 or 0 … 7.5
    overflows): alkaid's mapping equals FixedFormat.quantize, the hand-checked reference of test_program."""
    port = FixedFormat(True, 10, 4)
    target = FixedFormat(signed, 4, 1, round_mode, overflow)
    inp = FVArrayInput(384)
    y = quantize_traced(alkaid_quantize(inp, *port.kif), target)
    x = np.arange(-192, 192) / 16.0
    got = trace(inp, y).predict(x[None, :])[0]
    np.testing.assert_array_equal(got, target.quantize(x))


def _values(y: Any) -> np.ndarray:
    """The value of each element of an alkaid array of constants."""
    flat = y.ravel()
    assert all(flat[j].low == flat[j].high for j in range(len(flat)))
    return np.array([float(flat[j].low) for j in range(len(flat))])


@pytest.mark.parametrize("round_mode", ["nearest_even", "nearest_up", "truncate"])
@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
@pytest.mark.parametrize("signed", [True, False])
def test_quantize_constants_and_variables_alike(round_mode: str, overflow: str, signed: bool) -> None:
    """The same values k/16 (k = −192 … 191) quantized to 4 bits with frac 1 as alkaid constants (what a neuron
    whose weights all round to zero gives), as variables, and as one array mixing both (constants at the even
    positions): every element equals FixedFormat.quantize. A constant must stay a constant (no logic)."""
    port = FixedFormat(True, 10, 4)
    target = FixedFormat(signed, 4, 1, round_mode, overflow)
    x = np.arange(-192, 192) / 16.0
    expected = target.quantize(x)
    hwconf = FVArrayInput(1).hwconf
    constants = FVArray(np.array([FVariable.from_const(v, hwconf=hwconf) for v in x]), hwconf=hwconf)
    np.testing.assert_array_equal(_values(quantize_traced(constants, target)), expected)
    inp = FVArrayInput(384)
    variables = alkaid_quantize(inp, *port.kif)
    mixed = FVArray(np.array([constants[j] if j % 2 == 0 else variables[j] for j in range(len(x))]), hwconf=hwconf)
    for y in (quantize_traced(variables, target), quantize_traced(mixed, target)):
        np.testing.assert_array_equal(trace(inp, y).predict(x[None, :])[0], expected)


def test_round_half_even_of_a_constant_by_hand() -> None:
    """The case of the defect: 0.875 = 0.111b rounded half to even to frac 2 is 1.0 (3.5 steps of ¼, a tie,
    to the even 4), and 0.625 = 2.5 steps is 0.5. da4ml 0.6 and alkaid 0.8 fold the unsigned wrap that extracts
    the bit of weight ¼ of 0.875 modulo 1 instead of ½ (0.75, not 0.25): the old trace gave 1.25."""
    hwconf = FVArrayInput(1).hwconf
    values = np.array([FVariable.from_const(v, hwconf=hwconf) for v in (0.875, 0.625)])
    got = _values(quantize_traced(FVArray(values, hwconf=hwconf), FixedFormat(False, 4, 2)))
    assert got.tolist() == [1.0, 0.5]


def _collapsed(rows: slice) -> Any:
    """hls4ml-jet, narrow mix (biases frac 3, data_out frac 2: a constant of frac 3 is rounded half to even):
    the incoming weights of the neurons ``rows`` of every Linear set to 0, biases uniform in ±1."""
    graph = quantized("hls4ml-jet", JET_MIXES["narrow"], seed=1)
    torch.manual_seed(4)
    with torch.no_grad():
        for node in ("seq_blocks_0", "seq_blocks_2", "seq_blocks_4", "seq_blocks_6"):
            linear = graph.submodule(graph.node(node))
            linear.weight[rows] = 0.0
            linear.bias.uniform_(-1, 1)
    return graph


def assert_traced_exactly(graph: Any) -> Any:
    """alkaid's interpreter of ``graph``'s program equals the program's reference and netcarve's forward bit for
    bit on 500 random inputs (×3: past the port's range too); the program."""
    program = build_program(graph)
    torch.manual_seed(5)
    x = torch.randn(500, 16) * 3
    port = program.port_inputs(x)
    logic = trace_program(program)
    np.testing.assert_array_equal(logic.predict(port), program.reference(port))
    np.testing.assert_array_equal(logic.predict(port), netcarve_forward(program.graph, x))
    return program


def test_a_collapsed_search_candidate_traces_and_exports_bit_exact() -> None:
    """Regression: trial 6 of a per-layer search on synthetic-jsc (hls4ml-jet at 16-32-16 units, 2-bit weights
    in the middle layers, trained 10 epochs: chance accuracy) failed with StopIteration inside alkaid 0.8's
    constant-matrix solver, on its third Linear: 30 of its 32 inputs are constants (ReLUs of neurons whose
    weights all quantized to 0) with 3 nonzero weights, and its 2 variable inputs have none. Its checkpoint
    (``tests/fixtures/collapsed_jsc_2bit.pt``) now traces: the network is a constant (0 LUTs), and alkaid's
    interpreter equals the reference and netcarve's forward exactly."""
    from netcarve.data.jsc_schema import jsc_info
    from netcarve.train.checkpoint import load_graph
    from tests.conftest import FIXTURES

    graph = load_graph(FIXTURES / "collapsed_jsc_2bit.pt", "hls4ml-jet", jsc_info())
    assert_traced_exactly(graph)
    assert fpga_costs(graph).total_luts == 0.0


@pytest.mark.parametrize(
    ("rows", "cut", "live"), [(slice(None), False, False), (slice(0, 40), True, False), (slice(0, 40), False, True)]
)
def test_constant_inputs_with_nonzero_weights_export_bit_exact(rows: slice, cut: bool, live: bool) -> None:
    """The first Linear loses its incoming weights at ``rows``, so those neurons are constants (bias 0.5, then
    ReLU) meeting nonzero weights in the next layer; with ``cut`` the next layer's weights from the other 24
    (variable) neurons are 0 too. All constant, or cut: the network is a constant (0 LUTs); otherwise the
    constants' products are folded (``dense_traced``) and the 24 variables traced. Either way alkaid's
    interpreter equals the program's reference and netcarve's forward exactly."""
    graph = quantized("hls4ml-jet", JET_MIXES["narrow"], seed=1)
    with torch.no_grad():
        first = graph.submodule(graph.node("seq_blocks_0"))
        first.weight[rows] = 0.0
        first.bias.fill_(0.5)
        if cut:
            graph.submodule(graph.node("seq_blocks_2")).weight[:, 40:] = 0.0
    program = assert_traced_exactly(graph)
    assert (fpga_costs(program.graph).total_luts > 0) == live


@pytest.mark.parametrize(("rows", "luts"), [(slice(None), "zero"), (slice(0, 3), "some")])
def test_neurons_with_all_weights_zero_export_bit_exact(rows: slice, luts: str) -> None:
    """Regression (a collapsed search candidate exported to da4ml 0.6 off by 0.0625, exit 0): with every weight
    zero (the whole network is constant, fpga_luts 0), or the first three neurons of each Linear without
    incoming weights, alkaid's interpreter, the program's reference and netcarve's forward agree exactly."""
    graph = _collapsed(rows)
    program = build_program(graph)
    torch.manual_seed(5)
    x = torch.randn(500, 16) * 3
    port = program.port_inputs(x)
    logic = trace_program(program)
    reference = program.reference(port)
    np.testing.assert_array_equal(logic.predict(port), reference)
    np.testing.assert_array_equal(logic.predict(port), netcarve_forward(program.graph, x))
    costs = fpga_costs(program.graph)
    assert (costs.total_luts == 0) == (luts == "zero")
    if luts == "zero":
        assert len(np.unique(reference, axis=0)) == 1 and np.abs(reference).max() > 0  # constant, not all 0


@pytest.mark.parametrize(("flavor", "pattern"), [("verilog", "src/*.v"), ("vhdl", "src/*.vhd"), ("vitis", "src/*.hh")])
def test_write_saves_loadable_logic_and_each_flavor(tmp_path: Path, flavor: str, pattern: str) -> None:
    """The backend writes logic.json (CombLogic.load gives the same predictions) and the ``--flavor`` project
    (Verilog, VHDL or Vitis HLS sources under a directory named after it), and reports alkaid's cost, its
    latency estimate [min, max] in ns and its version; an RTL flavor is pipelined at the clock period, so its
    cycles are at least the critical path over the period, rounded up."""
    graph = quantized("jsc-three-linear-layers", JSC_MIXES["wide"])
    program = build_program(graph)
    result = BACKENDS.get("alkaid").write(program, tmp_path, ExportOptions(flavor=flavor))
    assert result.files == {"logic": "logic.json", flavor: flavor}
    assert list((tmp_path / flavor).glob(pattern))
    port = program.port_inputs(torch.randn(500, 16) * 3)
    loaded = CombLogic.load(tmp_path / "logic.json")
    np.testing.assert_array_equal(loaded.predict(port), result.predict(port))
    np.testing.assert_array_equal(result.predict(port), program.reference(port))
    cost: Any = result.figures["cost"]
    low, high = result.figures["latency_ns"]
    assert cost > 0 and 0 < low <= high
    assert result.figures["alkaid"] == package_version() and result.figures["flavor"] == flavor
    if flavor != "vitis":
        assert result.figures["pipeline_cycles"] >= math.ceil(high / CLOCK_PERIOD_NS)


def test_every_mode_between_layers_matches_the_reference() -> None:
    """The narrow hls4ml-jet program with its quantizers between layers cycled through the six
    rounding × overflow modes (FixedFormat's, independent of the quantizers' config keys): the traced logic
    equals the program's reference bit for bit."""
    program = build_program(quantized("hls4ml-jet", JET_MIXES["narrow"], seed=1))
    combos = [(r, o) for o in ("wrap", "saturate") for r in ("truncate", "nearest_up", "nearest_even")]
    steps, k = [], 0
    for step in program.steps:
        if isinstance(step, Quantize):
            r, o = combos[k % len(combos)]
            step = dataclasses.replace(step, fmt=dataclasses.replace(step.fmt, round=r, overflow=o))
            k += 1
        steps.append(step)
    assert k >= 6
    program = dataclasses.replace(program, steps=steps)
    torch.manual_seed(3)
    port = program.port_inputs(torch.randn(2000, 16) * 3)
    np.testing.assert_array_equal(trace_program(program).predict(port), program.reference(port))


@pytest.mark.parametrize("mix", list(CNN_MIXES))
def test_digits_cnn_trace_is_bit_exact(mix: str) -> None:
    """digits-cnn quantized by type (every conv, linear and ReLU integer; its BatchNorm2d folded into the first
    conv): on 600 rows (σ = 3: the port and the ReLUs saturate, the narrow mix truncates, rounds half up and
    wraps), alkaid's interpreter of the traced convolutions, max pool and average pool, the program's float64
    reference and netcarve's fake-quantized forward agree exactly (max |diff| = 0)."""
    program = build_program(quantized_cnn(mix, seed=1))
    assert len(program.folded) == 1 and any(isinstance(s, MaxPool) for s in program.steps)
    torch.manual_seed(2)
    x = torch.randn(600, 64) * 3
    port = program.port_inputs(x)
    logic = trace_program(program).predict(port)
    reference = program.reference(port)
    assert logic.shape == (600, 10) and len(np.unique(reference)) >= 10  # not a dead network
    np.testing.assert_array_equal(logic, reference)
    np.testing.assert_array_equal(logic, netcarve_forward(program.graph, x))


def test_cnn_fpga_costs_per_layer_and_digest() -> None:
    """The fpga metrics trace a CNN too: one entry per constant-matrix layer (the two convs, the average pool,
    the Linear), each costing LUTs. The cache digest reads a max pool's index groups: the same program with
    two groups swapped is another digest, while the same groups under another node name are the same."""
    program = build_program(quantized_cnn("narrow"))
    costs = fpga_costs(program.graph)
    assert list(costs.per_layer) == ["seq_blocks_1", "seq_blocks_5", "seq_blocks_7", "seq_blocks_9"]
    assert costs.total_luts > 0 and all(luts > 0 for luts, _ in costs.per_layer.values())
    index, pool = next((i, s) for i, s in enumerate(program.steps) if isinstance(s, MaxPool))

    def digest_with(step: MaxPool) -> str:
        steps = [*program.steps[:index], step, *program.steps[index + 1 :]]
        return program_digest(dataclasses.replace(program, steps=steps))

    swapped = pool.groups[[1, 0, *range(2, len(pool.groups))]]
    assert digest_with(dataclasses.replace(pool, groups=swapped)) != program_digest(program)
    assert digest_with(dataclasses.replace(pool, node="other")) == program_digest(program)


#: automatic weight and bias fracs (3- and 4-bit weights, 6-bit biases), fixed data fracs
AUTO_FRAC = {
    "by": "name",
    "default": integer(data_in_width=8, data_in_frac_width=4, weight_width=4, weight_frac_width="auto",
                       bias_width=6, bias_frac_width="auto", data_out_width=10, data_out_frac_width=4),
    "seq_blocks_2": integer(data_in_width=8, data_in_frac_width=4, weight_width=3, weight_frac_width="auto",
                            bias_width=6, bias_frac_width="auto", data_out_width=10, data_out_frac_width=4),
}  # fmt: skip


@pytest.mark.parametrize("model", ["hls4ml-jet", "jsc-toy"])
def test_auto_frac_export_is_bit_exact(model: str) -> None:
    """Automatic fracs: every Dense step's weight and bias format is the frac the model's own forward resolves
    on the same (for jsc-toy: BatchNorm-folded) weights, and alkaid's interpreter, the program's float64
    reference and netcarve's fake-quantized forward agree exactly on 2,000 rows (σ = 3)."""
    graph = quantized(model, AUTO_FRAC, seed=1)
    program = build_program(graph)
    dense = [step for step in program.steps if isinstance(step, Dense)]
    for step in dense:
        layer = program.graph.submodule(program.graph.node(step.node))
        assert step.weight_fmt.frac == layer.quant["weight"].resolve(layer.weight).frac_width
        assert step.bias_fmt is not None
        assert step.bias_fmt.frac == layer.quant["bias"].resolve(layer.bias).frac_width
    assert len(dense) == (4 if model == "hls4ml-jet" else 3)
    assert any(step.weight_fmt.frac != step.weight_fmt.width // 2 for step in dense)  # not the fixed default
    torch.manual_seed(2)
    x = torch.randn(2000, 16) * 3
    port = program.port_inputs(x)
    logic = trace_program(program).predict(port)
    reference = program.reference(port)
    assert np.abs(reference).max() > 0
    np.testing.assert_array_equal(logic, reference)
    np.testing.assert_array_equal(logic, netcarve_forward(program.graph, x))
