"""alkaid's firmware estimates (``fpga_luts``, ``fpga_latency``): total, per layer, the cache, and where they show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

pytest.importorskip("alkaid")

from netcarve.analysis import analyze
from netcarve.analysis import fpga as fpga_module
from netcarve.analysis.fpga import fpga_costs, program_digest
from netcarve.data.jsc_schema import jsc_info
from netcarve.errors import PassError
from netcarve.export import alkaid as alkaid_backend
from netcarve.export.program import Dense, Program, Quantize, build_program
from netcarve.ir import Graph
from netcarve.models import create_model
from netcarve.transforms.quantize.api import quantize

#: every Linear and ReLU: 8-bit inputs (frac 4), 6-bit weights (frac 5), 8-bit biases (frac 4), 10-bit
#: outputs (frac 4): enough fractional weight bits that the default init keeps non-zero weights
UNIFORM: dict[str, Any] = {
    "by": "type",
    "default": {
        "config": {
            "name": "integer", "data_in_width": 8, "data_in_frac_width": 4, "weight_width": 6,
            "weight_frac_width": 5, "bias_width": 8, "bias_frac_width": 4, "data_out_width": 10,
            "data_out_frac_width": 4,
        }
    },
}  # fmt: skip


def quantized(model: str = "jsc-three-linear-layers", seed: int = 0) -> Graph:
    torch.manual_seed(seed)
    module = create_model(model, jsc_info())
    module.eval()
    return quantize(module, UNIFORM, input_shape=(16,))


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    fpga_module.clear_cache()


@pytest.fixture
def trace_calls(monkeypatch: pytest.MonkeyPatch) -> list[Program]:
    """Every program alkaid traces, in order."""
    calls: list[Program] = []
    real = alkaid_backend.trace_program

    def counting(program: Program) -> Any:
        calls.append(program)
        return real(program)

    monkeypatch.setattr(alkaid_backend, "trace_program", counting)
    return calls


def test_total_is_alkaids_own_estimate_of_the_whole_program() -> None:
    """fpga_luts is exactly alkaid's cost of the traced program and fpga_latency the max of its latency."""
    graph = quantized()
    costs = fpga_costs(graph)
    comb = alkaid_backend.trace_program(build_program(graph))
    assert costs.total_luts == float(comb.cost) and costs.total_luts > 0
    assert costs.total_latency == float(max(comb.latency)) and costs.total_latency > 0


def one_layer(program: Program, node: str) -> Program:
    """By hand: with every Linear quantized at data_in and data_out, a layer is its data_in format as the
    port (the program's port for the first layer), then its Dense and its data_out quantizer."""
    steps = program.steps
    index = next(i for i, s in enumerate(steps) if isinstance(s, Dense) and s.node == node)
    dense = steps[index]
    assert isinstance(dense, Dense)
    before = steps[index - 1] if index else None
    port = before.fmt if isinstance(before, Quantize) else program.port
    if isinstance(before, Quantize):
        assert (before.node, before.operand) == (node, "data_in")
    after = steps[index + 1]
    assert isinstance(after, Quantize) and (after.node, after.operand) == (node, "data_out")
    return Program(program.graph, dense.weight.shape[1], dense.weight.shape[0], port, [dense, after])


def test_each_layer_is_a_one_layer_trace() -> None:
    """Per-layer numbers equal alkaid's trace of that Linear alone (its data_in as the port, its Dense and
    its data_out quantizer), for the three Linears of jsc-three-linear-layers; the layers are not free."""
    graph = quantized()
    program = build_program(graph)
    costs = fpga_costs(graph)
    assert (
        list(costs.per_layer) == [d.node for d in program.layers()] == ["seq_blocks_2", "seq_blocks_4", "seq_blocks_6"]
    )
    for node, (luts, latency) in costs.per_layer.items():
        comb = alkaid_backend.trace_program(one_layer(program, node))
        assert (luts, latency) == (float(comb.cost), float(max(comb.latency)))
        assert luts > 0
    # a layer's critical path is part of the whole program's
    assert max(lat for _, lat in costs.per_layer.values()) <= costs.total_latency


def test_one_layer_program_computes_that_layer() -> None:
    """The layer program's reference on the layer's own port values is the graph's Linear followed by its
    output quantizer (float64, exact)."""
    graph = quantized()
    program = build_program(graph)
    layer = program.layer_programs()["seq_blocks_4"]
    x = layer.port.quantize(np.random.default_rng(0).normal(0, 2, (50, layer.in_features)))
    dense = next(s for s in program.layers() if s.node == "seq_blocks_4")
    out_fmt = layer.steps[-1]
    assert isinstance(out_fmt, Quantize)
    np.testing.assert_array_equal(layer.reference(x), out_fmt.fmt.quantize(x @ dense.weight.T + dense.bias))


def test_a_second_call_does_not_trace(trace_calls: list[Program]) -> None:
    """The first call traces the whole program and each of the 3 layers (4 traces); the same graph again
    traces nothing; a copy with only the last layer's weights changed traces the whole program and that
    layer (2 more), the other layers' digests being unchanged."""
    graph = quantized()
    first = fpga_costs(graph)
    assert len(trace_calls) == 4
    assert fpga_costs(graph) == first
    assert len(trace_calls) == 4
    other = graph.copy()
    with torch.no_grad():
        last = other.submodule(next(n for n in other.nodes if n.name == "seq_blocks_6"))
        assert isinstance(last, torch.nn.Linear)
        last.weight.mul_(-1)
    second = fpga_costs(other)
    assert len(trace_calls) == 6
    assert second.per_layer["seq_blocks_2"] == first.per_layer["seq_blocks_2"]


def test_digest_follows_what_the_trace_reads() -> None:
    graph = quantized()
    program = build_program(graph)
    assert program_digest(program) == program_digest(build_program(graph))
    dense = next(program.layers())
    changed = dense.weight.copy()
    changed[0, 0] += 2**-5
    steps = [Dense(s.node, changed, s.bias, s.weight_fmt, s.bias_fmt) if s is dense else s for s in program.steps]
    assert program_digest(Program(graph, 16, 5, program.port, steps)) != program_digest(program)
    assert program_digest(Program(graph, 16, 5, program.port, program.steps[::-1])) != program_digest(program)


def test_a_float_graph_names_the_layer() -> None:
    torch.manual_seed(0)
    graph = Graph.from_module(create_model("jsc-three-linear-layers", jsc_info()), (16,))
    with pytest.raises(PassError, match="seq_blocks_2"):
        fpga_costs(graph)


def test_report_fields_only_when_computed() -> None:
    """Plain analysis has no fpga keys or columns; ``fpga=True`` fills the total and each Linear's record
    (ReLUs and the BatchNorm stay empty) in the dict and the CSV."""
    graph = quantized()
    plain = analyze(graph, (1, 16))
    assert "fpga_luts" not in plain.to_dict()["total"] and "fpga_luts" not in plain.to_csv().splitlines()[0]
    report = analyze(graph, (1, 16), fpga=True)
    costs = fpga_costs(graph)
    data = report.to_dict()
    assert (data["total"]["fpga_luts"], data["total"]["fpga_latency"]) == (costs.total_luts, costs.total_latency)
    by_name = {layer["name"]: layer for layer in data["layers"]}
    for node, (luts, latency) in costs.per_layer.items():
        assert (by_name[node]["fpga_luts"], by_name[node]["fpga_latency"]) == (luts, latency)
    assert all(v["fpga_luts"] is None for k, v in by_name.items() if k not in costs.per_layer)
    header, *rows = report.to_csv().splitlines()
    column = header.split(",").index("fpga_luts")
    assert float(rows[-1].split(",")[column]) == costs.total_luts


def test_cli_fpga_json_and_table(app: typer.Typer, tmp_path: Path) -> None:
    from netcarve.train.checkpoint import build_graph, save_checkpoint

    graph = build_graph("jsc-three-linear-layers", jsc_info("synthetic-jsc"), (("quantize", UNIFORM),))
    path = save_checkpoint(tmp_path / "q.pt", graph)
    args = ["analyze", "jsc-three-linear-layers", "synthetic-jsc", "--load", str(path), "--fpga"]
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["total"]["fpga_luts"] == fpga_costs(graph).total_luts
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0, table.stderr
    costs = fpga_costs(graph)
    line = f"{costs.total_luts:,.0f} LUTs, critical path {costs.total_latency:,.2f} ns"
    assert "fpga (LUT)" in table.stdout and line in table.stdout


def test_cli_fpga_of_a_float_model_is_one_line_naming_the_node(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["analyze", "jsc-three-linear-layers", "synthetic-jsc", "--fpga"])
    assert result.exit_code == 2
    assert "seq_blocks_2" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_alkaid_is_imported_only_when_something_is_traced() -> None:
    import subprocess
    import sys

    code = (
        "import netcarve.analysis.fpga, netcarve.analysis.api, netcarve.search.candidate, netcarve.metrics, sys; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('alkaid', 'da4ml')); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
