"""``netcarve transform`` end to end on synthetic-jsc: passes in file order, checkpoint, tables, no overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("netcarve.analysis.api", reason="netcarve transform reports size and BitOPs")

from netcarve.cli.app import app
from netcarve.transforms.quantize import QuantizedModule

runner = CliRunner()

CONFIG = """
model = "jsc-toy"
dataset = "synthetic-jsc:2000"

[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "integer"
data_in_width = 8
data_in_frac_width = 4
weight_width = 8
weight_frac_width = 4
bias_width = 8
bias_frac_width = 4
"""


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def test_transform_writes_a_quantized_checkpoint_and_reports_before_after(in_tmp: Path) -> None:
    from netcarve.data import load_dataset
    from netcarve.train import load_graph

    (in_tmp / "q.toml").write_text(CONFIG)
    result = runner.invoke(app, ["transform", "--config", "q.toml", "--output", "out/q.pt"])
    assert result.exit_code == 0, result.output
    assert "seq_blocks_2" in result.output and "float32 → uinteger(8,4)" in result.output
    metrics = json.loads((in_tmp / "runs" / "jsc-toy_synthetic-jsc_2000" / "latest" / "metrics.json").read_text())
    assert metrics["before"]["size_bits"] == 327 * 32 and metrics["after"]["size_bits"] == 4392
    assert metrics["after"]["bitops"] == 20936 and metrics["after"]["model_size"] == 549
    graph = load_graph(in_tmp / "out" / "q.pt", "jsc-toy", load_dataset("synthetic-jsc:2000").info)
    quantized = [n.name for n in graph.compute_nodes() if isinstance(graph.submodule(n), QuantizedModule)]
    assert quantized == ["seq_blocks_2", "seq_blocks_5", "seq_blocks_8"]

    again = runner.invoke(app, ["transform", "--config", "q.toml", "--output", "out/q.pt"])
    assert again.exit_code == 2 and "already exists" in again.output


def test_transform_without_passes_is_a_config_error(in_tmp: Path) -> None:
    (in_tmp / "empty.toml").write_text('model = "jsc-toy"\ndataset = "synthetic-jsc:2000"\n')
    result = runner.invoke(app, ["transform", "--config", "empty.toml"])
    assert result.exit_code == 2 and "no passes table" in result.output
