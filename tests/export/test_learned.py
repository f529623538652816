"""A frozen learned model exports like any per-element one: a layer the learned fracs pruned entirely costs
no logic, and alkaid's trace equals netcarve's forward bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import netcarve
from netcarve.data import load_dataset
from netcarve.data.base import DatasetInfo
from netcarve.export.program import build_program, netcarve_forward
from netcarve.train import build_graph, save_checkpoint
from netcarve.transforms.quantize.learned import freeze_learned, learned_operands

pytest.importorskip("alkaid")

from netcarve.analysis.fpga import program_digest, trace_cost
from netcarve.export.alkaid import trace_program
from netcarve.export.api import export

LEARNED = {"name": "learned", "data_in_width": 8, "data_in_frac_width": 4, "weight_width": 8,
           "weight_frac_width": 4, "bias_width": 8, "bias_frac_width": 4}  # fmt: skip


def test_an_all_pruned_layer_costs_nothing_and_exports_bit_exact() -> None:
    """hls4ml-jet, learned everywhere, calibrated on 512 rows (σ = 2); seq_blocks_2's weight and bias fracs
    set to −20, so every |w| · 2^−20 rounds to 0: all width 0 after freezing. That layer's alkaid trace costs
    0 LUTs, the whole network's trace equals netcarve's forward on 1,000 rows, and seq_blocks_2's outputs are
    all 0 (its data_out is the ReLU's input: the network's later logits are constant)."""
    torch.manual_seed(0)
    model = netcarve.create_model("hls4ml-jet", DatasetInfo("jsc", 16, 5, tuple("gqwzt")))
    graph = netcarve.quantize(model, {"by": "type", "default": {"config": LEARNED}}, input_shape=(16,))
    graph.module.train()
    graph.module(torch.randn(512, 16) * 2)
    states = learned_operands(graph.submodule(graph.node("seq_blocks_2")))
    with torch.no_grad():
        states["weight"].frac.fill_(-20.0)
        states["bias"].frac.fill_(-20.0)
    graph.module.eval()
    frozen = freeze_learned(graph).graph
    spec = frozen.submodule(frozen.node("seq_blocks_2")).quant
    assert spec["weight"].formats is not None and int(spec["weight"].formats.width.max()) == 0
    assert spec["bias"].formats is not None and int(spec["bias"].formats.width.max()) == 0
    program = build_program(frozen)
    assert trace_cost(program.layer_programs()["seq_blocks_2"]).luts == 0.0
    x = torch.randn(1000, 16) * 2
    port = program.port_inputs(x)
    logic = trace_program(program).predict(port)
    np.testing.assert_array_equal(logic, netcarve_forward(program.graph, x))
    np.testing.assert_array_equal(logic, program.reference(port))
    assert len(np.unique(logic, axis=0)) == 1
    assert program_digest(build_program(graph)) == program_digest(program)  # the export freezes a learned graph


def test_export_api_freezes_a_learned_checkpoint(tmp_path: Path) -> None:
    """A checkpoint of a learned graph (hls4ml-jet, calibrated) exports through ``netcarve.export.api.export``
    to alkaid without a freeze step of the user's: on synthetic-jsc:2000's test split (400 rows) 0 difference
    and 100 % argmax agreement."""
    info = load_dataset("synthetic-jsc:2000").info
    torch.manual_seed(0)
    graph = build_graph("hls4ml-jet", info, (("quantize", {"by": "type", "default": {"config": LEARNED}}),))
    graph.module.train()
    graph.module(torch.randn(512, 16) * 2)
    graph.module.eval()
    save_checkpoint(tmp_path / "learned.pt", graph)
    outcome = export(tmp_path / "learned.pt", "alkaid", tmp_path / "out", dataset="synthetic-jsc:2000")
    assert outcome.rows == 400 and outcome.exact and outcome.argmax_agreement == 1.0
