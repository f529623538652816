"""The hls4ml backend: the compiled C simulation equals the program's exact reference and netcarve's forward
bit for bit; quantizers between layers compose into one precision only when that is exact."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from netcarve.data.jsc_schema import jsc_info
from netcarve.errors import PassError
from netcarve.export.backends import BACKENDS, ExportOptions
from netcarve.export.program import FixedFormat, build_program, netcarve_forward
from netcarve.ir import Graph
from netcarve.models import create_model

from .test_program import JET_PER_LAYER, TOY_MIXES, UNIFORM, integer, quantized, quantized_cnn

pytest.importorskip("hls4ml")

import netcarve.export.hls4ml as hls

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="hls4ml's C simulation needs g++ on the PATH")


#: hls4ml-jet: Linear seq_blocks_0/2/4/6, ReLU 1/3/5. "mixed": every layer its own frac widths, so a
#: Linear's data_out (frac 5) and the next ReLU's data_in (frac 4) are two roundings (moved past the ReLU).
#: "modes": truncate and nearest_up data_out roundings.
JET_MIXES = {
    "mixed": JET_PER_LAYER,
    "modes": {
        "by": "name",
        "default": integer(data_in_width=8, data_in_frac_width=4, weight_width=6, weight_frac_width=4,
                           bias_width=8, bias_frac_width=4, data_out_width=8, data_out_frac_width=2),
        "seq_blocks_0": integer(data_in_width=8, data_in_frac_width=4, weight_width=6, weight_frac_width=4,
                                bias_width=8, bias_frac_width=4, data_out_width=6, data_out_frac_width=1,
                                data_out_round="truncate"),
        "seq_blocks_2": integer(data_in_width=7, data_in_frac_width=3, weight_width=5, weight_frac_width=4,
                                bias_width=6, bias_frac_width=3, data_out_width=7, data_out_frac_width=2,
                                data_out_round="nearest_up"),
        "seq_blocks_6": integer(data_in_width=6, data_in_frac_width=2, weight_width=5, weight_frac_width=3,
                                bias_width=6, bias_frac_width=3, data_out_width=9, data_out_frac_width=3,
                                data_out_round="truncate"),
    },
}  # fmt: skip

#: jsc-three-linear-layers: BatchNorm 0 (software preprocessing before the port), ReLU 1/3/5/7, Linear 2/4/6
JSC_MIXES = {
    "uniform": {
        "by": "name",
        "default": UNIFORM["default"],
    },
    "narrow": {
        "by": "name",
        "default": integer(data_in_width=5, data_in_frac_width=2, weight_width=3, weight_frac_width=2,
                           bias_width=4, bias_frac_width=2, data_out_width=7, data_out_frac_width=2),
        "seq_blocks_1": integer(data_in_width=6, data_in_frac_width=3, data_out_width=6, data_out_frac_width=3),
        "seq_blocks_4": integer(data_in_width=6, data_in_frac_width=3, weight_width=4, weight_frac_width=3,
                                bias_width=3, bias_frac_width=1, data_out_width=8, data_out_frac_width=2,
                                data_out_round="nearest_up"),
    },
}  # fmt: skip

MIXES = {"hls4ml-jet": JET_MIXES, "jsc-three-linear-layers": JSC_MIXES, "jsc-toy": TOY_MIXES}
#: 5 compiles here and 1 in test_float_model_with_default_precision (~6-13 s each); jsc-toy's BatchNorms are
#: folded into its Linears (both mixes: together every rounding mode, saturate and wrap)
CASES = [
    ("hls4ml-jet", "mixed"), ("hls4ml-jet", "modes"), ("jsc-three-linear-layers", "narrow"),
    ("jsc-toy", "modes"), ("jsc-toy", "narrow"),
]  # fmt: skip


@needs_gxx
@pytest.mark.parametrize(("model", "mix"), CASES)
def test_compiled_model_is_bit_exact(model: str, mix: str, tmp_path: Path) -> None:
    """On 3,000 rows (σ = 3: the port and narrow layers saturate, data_out roundings hit ties), hls4ml's
    compiled C simulation, the program's float64 reference and netcarve's fake-quantized forward agree
    exactly (max |diff| = 0, argmax 100 %); the project and log are in the directory. With BatchNorms folded
    (jsc-toy), netcarve's forward is that of the folded graph (program.graph)."""
    graph = quantized(model, MIXES[model][mix], seed=1)
    program = build_program(graph)
    start = time.perf_counter()
    result = BACKENDS.get("hls4ml").write(program, tmp_path, ExportOptions())
    assert time.perf_counter() - start < 120
    torch.manual_seed(2)
    x = torch.randn(3000, 16) * 3
    port = program.port_inputs(x)
    got = result.predict(port)
    reference = program.reference(port)
    assert got.shape == (3000, program.out_features)
    assert len(np.unique(reference)) >= 5  # not a dead network
    np.testing.assert_array_equal(got, reference)
    np.testing.assert_array_equal(got, netcarve_forward(program.graph, x))
    assert (got.argmax(1) == reference.argmax(1)).all()
    assert set(result.files) == {"project", "config", "precisions", "log"}
    assert all((tmp_path / f).exists() for f in result.files.values())
    assert (tmp_path / "hls4ml" / "firmware").is_dir()
    assert "Topology" in (tmp_path / "hls4ml.log").read_text()  # hls4ml's stdout, kept out of the terminal
    assert result.figures["part"] == hls.DEFAULT_PART
    table = json.loads((tmp_path / result.files["precisions"]).read_text())
    assert table["input_1"]["result"] == hls.hls_precision(program.port)
    assert [v["node"] for v in table.values() if "weight" in v] == [d.node for d in program.layers()]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (FixedFormat(True, 8, 4), "ap_fixed<8,4,AP_RND_CONV,AP_SAT>"),
        (FixedFormat(False, 6, 4, "nearest_up", "wrap"), "ap_ufixed<6,2,AP_RND,AP_WRAP>"),
        (FixedFormat(True, 5, 7, "truncate"), "ap_fixed<5,-2,AP_TRN,AP_SAT>"),  # I < 0: all bits fractional
        (FixedFormat(False, 4, 0, "truncate", "wrap"), "ap_ufixed<4,4,AP_TRN,AP_WRAP>"),
    ],
)
def test_precision_strings(fmt: FixedFormat, expected: str) -> None:
    """I = width − frac; nearest_even → AP_RND_CONV, nearest_up → AP_RND, truncate → AP_TRN; saturate →
    AP_SAT, wrap → AP_WRAP; ap_ufixed when unsigned."""
    assert hls.hls_precision(fmt) == expected


def test_unknown_mode_is_a_pass_error() -> None:
    """A format is checked when it is made (netcarve.ir.fixedpoint.check_modes), before any backend maps it."""
    with pytest.raises(PassError, match="unknown round mode 'stochastic'"):
        hls.hls_precision(FixedFormat(True, 8, 4, "stochastic"))


def test_compose_keeps_exact_chains_and_refuses_double_rounding() -> None:
    """Sums on the 1/256 grid in [−8, 8]: fixed<12,7> (frac 5) then fixed<8,4> (frac 4), both nearest_even,
    is double rounding: −2039/256 → −255/32 → (a tie) −8, while one rounding gives −127/16; no single format
    reproduces the chain. A second format with a finer grid and a wider range (fixed<16,8>) is the identity
    on the first's values, so the chain is its first format. Two truncations compose (floor of a floor). An
    empty chain gives the exact format of the domain."""
    domain = hls.Domain(8, -8.0, 8.0)
    fine, coarse = FixedFormat(True, 12, 5), FixedFormat(True, 8, 4)
    with pytest.raises(PassError, match=r"node 'n0'.*export it with alkaid"):
        hls.compose([fine, coarse], domain, "node 'n0'")
    assert hls.compose([fine, FixedFormat(True, 16, 8)], domain, "x")[0] == fine
    trn_fine, trn_coarse = FixedFormat(True, 12, 5, "truncate"), FixedFormat(True, 8, 4, "truncate")
    assert hls.compose([trn_fine, trn_coarse], domain, "x")[0] == trn_coarse
    exact, _ = hls.compose([], domain, "x")
    assert exact == FixedFormat(True, 13, 8, "truncate", "wrap")  # k in −2048 … 2048 needs 13 bits


def test_relu_output_then_coarser_input_is_refused() -> None:
    """After a ReLU whose values are on the 1/32 grid, its data_out rounded to frac 3 then the next Linear's
    data_in to frac 2 (both nearest_even, both after the ReLU, so neither can move) is double rounding:
    11/32 → 3/8 → (a tie) 1/2, while one rounding gives 1/4. PassError naming the ReLU. With data_out frac 1
    (the data_in grid is finer: the identity on its values) the chain is one precision."""
    base = UNIFORM["default"]
    layer2 = {"config": {**base["config"], "data_in_frac_width": 2}}
    layer0 = {"config": {**base["config"], "data_out_width": 11, "data_out_frac_width": 5}}
    relu1 = integer(data_in_width=9, data_in_frac_width=5, data_out_width=6, data_out_frac_width=1)
    ok = {"by": "name", "default": base, "seq_blocks_0": layer0, "seq_blocks_1": relu1, "seq_blocks_2": layer2}
    _, layers = hls.plan(build_program(quantized("hls4ml-jet", ok)))
    assert layers[2].node == "seq_blocks_1" and layers[2].precision["result"] == "ap_ufixed<6,5,AP_RND_CONV,AP_SAT>"
    bad = {**ok, "seq_blocks_1": integer(data_in_width=9, data_in_frac_width=5, data_out_width=8,
                                         data_out_frac_width=3)}  # fmt: skip
    with pytest.raises(PassError, match=r"node 'seq_blocks_1'.*alkaid"):
        hls.plan(build_program(quantized("hls4ml-jet", bad)))


def test_missing_compiler_is_one_line(tmp_path: Path, monkeypatch: Any) -> None:
    program = build_program(quantized("hls4ml-jet", JET_MIXES["mixed"]))
    monkeypatch.setattr(hls.shutil, "which", lambda name: None)
    with pytest.raises(hls.CompilerMissingError, match="g\\+\\+") as info:
        hls.write(program, tmp_path, ExportOptions())
    assert "\n" not in str(info.value)


def float_graph(model: str) -> Graph:
    torch.manual_seed(3)
    module = create_model(model, jsc_info())
    module.eval()
    return Graph.from_module(module, (16,))


def test_parse_precision() -> None:
    """hls4ml's default precision ap_fixed<16,6> has ap_fixed's default modes: truncate, wrap."""
    assert hls.parse_precision("ap_fixed<16,6>") == FixedFormat(True, 16, 10, "truncate", "wrap")
    assert hls.parse_precision("ap_ufixed<8, 3, AP_RND_CONV, AP_SAT>") == FixedFormat(False, 8, 5)
    for text in ("ap_int<8>", "ap_fixed<8,3,AP_RND_ZERO>", "ap_fixed<8,3,AP_RND,AP_SAT_SYM>"):
        with pytest.raises(PassError, match="precision"):
            hls.parse_precision(text)


@needs_gxx
def test_float_model_with_default_precision(tmp_path: Path) -> None:
    """A float jsc-three-linear-layers exports with hls4ml's default precision ap_fixed<16,6> for its float
    inputs, weights and biases (the BatchNorm stays preprocessing, the first ReLU's input is the port): the
    C simulation equals the program's reference bit for bit, and differs from netcarve's float forward only
    by that rounding (measured: max |diff| 5.3e-3 on outputs up to 0.41, argmax agreement 100 %)."""
    graph = float_graph("jsc-three-linear-layers")
    default = hls.parse_precision("ap_fixed<16,6>")
    with pytest.raises(PassError, match="not fixed-point quantized"):
        build_program(graph)
    program = build_program(graph, float_precision=default)
    assert program.port == default and program.preprocess == ["seq_blocks_0"]
    for dense in program.layers():
        np.testing.assert_array_equal(dense.weight, default.quantize(dense.weight))
        assert dense.weight_fmt == default
    result = BACKENDS.get("hls4ml").write(program, tmp_path, ExportOptions(default_precision="ap_fixed<16,6>"))
    torch.manual_seed(4)
    x = torch.randn(3000, 16)
    port = program.port_inputs(x)
    got = result.predict(port)
    np.testing.assert_array_equal(got, program.reference(port))
    floats = netcarve_forward(graph, x)
    assert np.abs(got - floats).max() < 0.05 * np.abs(floats).max()
    assert (got.argmax(1) == floats.argmax(1)).mean() >= 0.95


def test_registered() -> None:
    backend = BACKENDS.get("hls4ml")
    assert backend.package == "hls4ml" and backend.allows_float


def test_cnn_is_refused_naming_its_first_conv() -> None:
    """hls4ml maps MLPs only: digits-cnn's program (its first step is the unrolled Conv2d seq_blocks_1) is a
    one-line PassError naming that node and kind and pointing to alkaid, from the backend's check (which the
    export runs before writing anything) and from plan. An MLP's program passes the check."""
    program = build_program(quantized_cnn("wide"))
    message = r"node 'seq_blocks_1' \(conv2d\): the hls4ml export maps MLPs only .*--to alkaid, which supports it"
    for refuse in (hls.check_mlp, hls.plan):
        with pytest.raises(PassError, match=message) as info:
            refuse(program)
        assert "\n" not in str(info.value)
    assert BACKENDS.get("hls4ml").check is hls.check_mlp
    hls.check_mlp(build_program(quantized("hls4ml-jet", UNIFORM)))
