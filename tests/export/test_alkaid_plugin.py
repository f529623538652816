"""netcarve's alkaid plugin: alkaid's own torch converter traces a netcarve checkpoint into the logic
``netcarve export --to alkaid`` builds, bit for bit."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from netcarve.data.jsc_schema import jsc_info
from netcarve.errors import ExportError
from netcarve.export.program import FixedFormat, Program, Quantize, build_program, netcarve_forward
from netcarve.ir import Graph
from netcarve.models.jsc import SeqBlocks
from netcarve.train.checkpoint import build_graph, load_saved_graph, save_checkpoint
from netcarve.transforms.quantize.api import quantize
from netcarve.transforms.quantize.modules import (
    QuantizedBatchNorm1d,
    QuantizedConv2d,
    QuantizedLinear,
    QuantizedReLU,
)
from tests.export.test_alkaid import JET_MIXES, JSC_MIXES
from tests.export.test_program import CNN_MIXES, TOY_MIXES, integer, quantized, quantized_cnn
from tests.transforms.helpers import settled

pytest.importorskip("alkaid")

from alkaid.converter import trace_model
from alkaid.converter.builtin.torch.layers import _modules_map
from alkaid.trace import trace
from alkaid.types import CombLogic

from netcarve.export.alkaid import port_input, trace_program
from netcarve.export.alkaid_plugin import ENTRY_POINT, firmware_module, register, trace_graph

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "netcarve.export.alkaid_plugin:register"


def declared_entry_points() -> dict[str, str]:
    """pyproject.toml's ``[project.entry-points.alkaid_torch]`` table."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(project["entry-points"]["alkaid_torch"])


def checkpointed(model: str, mix: dict[str, Any], tmp_path: Path) -> Graph:
    """``model`` quantized by ``mix`` with the seeded weights and BatchNorm statistics of ``quantized``, saved
    by ``save_checkpoint`` and read back by ``load_saved_graph``, as a user's checkpoint is."""
    graph = build_graph(model, jsc_info(), (("quantize", mix),))
    graph.module.load_state_dict(quantized(model, mix, seed=1).module.state_dict())
    return load_saved_graph(save_checkpoint(tmp_path / f"{model}.pt", graph))


def overflows(program: Program, port: np.ndarray) -> int:
    """How many values reach a quantizer between layers outside its range (to saturate or wrap): the
    program's reference up to each Quantize step, against that step's range."""
    count = 0
    for index, step in enumerate(program.steps):
        if isinstance(step, Quantize):
            before = dataclasses.replace(program, steps=program.steps[:index]).reference(port)
            lo, hi = (k * 2.0**-step.fmt.frac for k in step.fmt.int_range)
            count += int(((before < lo) | (before > hi)).sum())
    return count


def assert_equals_export(graph: Graph, logic: CombLogic, x: torch.Tensor) -> None:
    """``logic`` (alkaid's converter) on the port values of ``x`` equals the export's traced program and
    netcarve's forward pass of the firmware's graph bit for bit; values overflow between layers (σ = 3)."""
    program = build_program(graph)
    port = program.port_inputs(x)
    assert overflows(program, port) > 0
    got = logic.predict(port)
    export = trace_program(program).predict(port)
    assert got.shape == export.shape == (len(x), program.out_features) and np.abs(export).max() > 0
    np.testing.assert_array_equal(got, export)
    np.testing.assert_array_equal(got, netcarve_forward(program.graph, x))


def test_pyproject_declares_the_plugin() -> None:
    """The one entry point alkaid reads for netcarve's modules: named ``netcarve`` (the top-level package of
    their classes, the name alkaid looks up) and loading :func:`register`."""
    assert declared_entry_points() == {"netcarve": PLUGIN}
    assert ENTRY_POINT == ("alkaid_torch", "netcarve", PLUGIN)
    assert importlib.metadata.EntryPoint("netcarve", PLUGIN, "alkaid_torch").load() is register


def test_installed_netcarve_declares_the_plugin() -> None:
    """The installed netcarve's metadata has the entry point (after ``make setup`` reinstalled it)."""
    declared = importlib.metadata.distribution("netcarve").entry_points.select(group="alkaid_torch")
    assert [(ep.name, ep.value) for ep in declared] == [("netcarve", PLUGIN)]
    assert importlib.metadata.entry_points(group="alkaid_torch")["netcarve"].load() is register


def test_trace_graph_names_a_missing_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the entry point in the installed metadata (here: none at all), alkaid's tracer would stop on a
    bare assertion at the first netcarve module: trace_graph says what to do instead."""
    monkeypatch.setattr("netcarve.export.alkaid_plugin.entry_points", lambda group: ())
    with pytest.raises(ExportError, match=r"^alkaid cannot find netcarve's plugin .*: reinstall netcarve"):
        trace_graph(quantized("hls4ml-jet", JET_MIXES["modes"]))


def test_register_adds_handlers_for_the_quantized_modules() -> None:
    register()
    handlers = {cls: _modules_map[cls].__name__ for cls in (QuantizedLinear, QuantizedConv2d, QuantizedReLU)}
    assert handlers == {
        QuantizedLinear: "ReplayQuantizedLinear",
        QuantizedConv2d: "ReplayQuantizedConv",
        QuantizedReLU: "ReplayQuantizedReLU",
    }
    assert _modules_map[QuantizedBatchNorm1d].__name__ == "RefuseQuantizedBatchNorm"


@pytest.mark.parametrize(("model", "mix"), [("hls4ml-jet", "modes"), ("jsc-three-linear-layers", "narrow")])
def test_alkaid_converter_equals_the_export(tmp_path: Path, model: str, mix: str) -> None:
    """A checkpoint's model traced by alkaid's ``trace_model`` (its torch converter, this plugin loaded through
    the entry point) from the port input, then ``trace``: on 2,000 rows (σ = 3) its logic equals the export's
    and netcarve's forward bit for bit. hls4ml-jet ("modes": truncate, nearest_up, wrap between layers) has no
    BatchNorm: its ``graph.module`` is traced as is. jsc-three-linear-layers ("narrow") starts with a
    BatchNorm, software preprocessing before the port (ReLU 1's data_in): ``firmware_module`` leaves it out."""
    graph = checkpointed(model, (JET_MIXES if model == "hls4ml-jet" else JSC_MIXES)[mix], tmp_path)
    program = build_program(graph)
    module = graph.module if model == "hls4ml-jet" else firmware_module(graph)
    assert (program.preprocess == ["seq_blocks_0"]) == (model != "hls4ml-jet")
    inp, x = port_input(program.port, (1, 16))
    _, out = trace_model(module, inputs=x, framework="torch")
    torch.manual_seed(2)
    assert_equals_export(graph, trace(inp.ravel(), out), torch.randn(2000, 16) * 3)


def test_folded_batchnorms_through_trace_graph(tmp_path: Path) -> None:
    """jsc-toy ("modes": its BatchNorms 3, 6, 9 fold into Linears 2, 5, 8, BatchNorm 3's output rounds half
    up and wraps): ``trace_graph`` (the folded firmware module, no input BatchNorm) equals the export on 2,000
    rows, bit for bit."""
    graph = checkpointed("jsc-toy", TOY_MIXES["modes"], tmp_path)
    assert len(build_program(graph).folded) == 3
    torch.manual_seed(3)
    assert_equals_export(graph, trace_graph(graph), torch.randn(2000, 16) * 3)


def small_cnn(mix: str) -> Graph:
    """A 6×6 single-channel CNN with digits-cnn's ops but an ``AvgPool2d`` (alkaid 0.8's converter replays
    ``AdaptiveAvgPool2d`` only to 1×1, and digits-cnn pools to 2×2): Unflatten, Conv2d 1→3 (pad 1),
    BatchNorm2d (folded), ReLU, MaxPool2d 2 → 3×3×3, Conv2d 3→4 (k 2) → 4×2×2, ReLU, AvgPool2d 2, Flatten,
    Linear 4→3; quantized by ``CNN_MIXES[mix]`` with weights uniform in ±1 (seeded)."""
    torch.manual_seed(0)
    layers = [
        nn.Unflatten(1, (1, 6, 6)), nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 2), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 3),
    ]  # fmt: skip
    for layer in layers:
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.uniform_(layer.weight, -1, 1)
            nn.init.uniform_(layer.bias, -0.5, 0.5)
    module = settled(SeqBlocks(*layers), in_shape=(36,), passes=30)
    return quantize(module, CNN_MIXES[mix], input_shape=(36,))


@pytest.mark.parametrize("mix", list(CNN_MIXES))
def test_convolutions_equal_the_export(mix: str) -> None:
    """The small CNN's quantized convolutions (alkaid's own convolution replay with the quantized kernels, a
    BatchNorm2d folded into the first) and alkaid's max and average pools: ``trace_graph`` equals the export
    (its convolutions unrolled into matrices) on 1,000 rows, bit for bit."""
    graph = small_cnn(mix)
    assert len(build_program(graph).folded) == 1
    torch.manual_seed(4)
    assert_equals_export(graph, trace_graph(graph), torch.randn(1000, 36) * 3)


@pytest.mark.slow
def test_digits_cnn_with_its_pool_as_avg_pool_equals_the_export() -> None:
    """digits-cnn ("narrow"), its AdaptiveAvgPool2d(2) of a 4×4 map replaced by the equal AvgPool2d(2) (alkaid's
    converter has no adaptive pool to 2×2): equal to the export bit for bit (slow: ~45 s of tracing)."""
    graph = quantized_cnn("narrow", seed=1)
    target = str(graph.node("seq_blocks_7").target)
    module = graph.module
    module.set_submodule(target, nn.AvgPool2d(2))
    graph = graph.derive(module)
    torch.manual_seed(5)
    assert_equals_export(graph, trace_graph(graph), torch.randn(1000, 64) * 3)


def test_what_the_plugin_refuses(tmp_path: Path) -> None:
    """A quantized BatchNorm (jsc-toy's BatchNorm 3, which the export folds and requantizes) and a quantized
    Linear whose weight is float: one-line ExportErrors, the first naming what to trace instead."""
    graph = checkpointed("jsc-toy", TOY_MIXES["modes"], tmp_path)
    program = build_program(graph)
    _, x = port_input(program.port, (1, 16))
    message = (
        "netcarve's alkaid plugin: QuantizedBatchNorm1d is folded into the layer before it by netcarve export, "
        "which requantizes that layer's weights: trace netcarve.export.alkaid_plugin.firmware_module(graph), or "
        "run netcarve export --to alkaid"
    )
    with pytest.raises(ExportError) as info:
        trace_model(graph.module, inputs=x, framework="torch")
    assert str(info.value) == message
    float_weights = quantize(settled(SeqBlocks(nn.Linear(16, 5))), {"by": "type", "linear": integer(data_in_width=8)})
    _, x = port_input(FixedFormat(True, 8, 4), (1, 16))
    with pytest.raises(ExportError, match=r"^netcarve's alkaid plugin: QuantizedLinear has a float weight; quantize"):
        trace_model(float_weights.module, inputs=x, framework="torch")


def _alkaid(*args: str | Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "alkaid"
    if not script.exists():
        pytest.skip("alkaid's command is not installed beside this Python")
    return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True, check=False)


def test_alkaid_convert_takes_the_traced_logic_not_a_checkpoint(tmp_path: Path) -> None:
    """``alkaid convert`` reads Keras files and ALIR JSON only: a netcarve checkpoint is refused ("Unsupported
    model file format"), and the logic ``trace_graph`` saves converts (``--flavor json``: optimized and saved
    again) into logic that predicts the same bit for bit."""
    graph = checkpointed("hls4ml-jet", JET_MIXES["narrow"], tmp_path)
    refused = _alkaid("convert", tmp_path / "hls4ml-jet.pt", tmp_path / "out", "-n", "0")
    assert refused.returncode != 0 and "Unsupported model file format" in refused.stderr
    logic = trace_graph(graph)
    logic.save(tmp_path / "logic.json")
    converted = _alkaid("convert", tmp_path / "logic.json", tmp_path / "converted.json", "--flavor", "json", "-n", "0")
    assert converted.returncode == 0, converted.stderr
    torch.manual_seed(6)
    port = build_program(graph).port_inputs(torch.randn(1000, 16) * 3)
    np.testing.assert_array_equal(CombLogic.load(tmp_path / "converted.json").predict(port), logic.predict(port))
