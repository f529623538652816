"""Per-element formats in the analysis: stored bits, BitOPs and the per-layer mean/max bits and pruned share,
hand-derived in each docstring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

import netcarve
from netcarve import analyze
from netcarve.ir import Graph
from netcarve.transforms.quantize.formats import set_formats

INT8 = {"name": "integer", "data_in_width": 8, "data_in_frac_width": 4, "weight_width": 8, "weight_frac_width": 4,
        "bias_width": 8, "bias_frac_width": 4}  # fmt: skip


def toy() -> Graph:
    """Linear _0 (3 → 2) → ReLU _1 (float) → Linear _2 (2 → 1); both Linears integer(8,4) on data_in, weight
    and bias; _0 then gets per-element weight widths [[0, 2, 4], [8, 1, 3]], bias widths [0, 5] and
    per-feature data_in widths [4, 0, 6]."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    graph = netcarve.quantize(model, {"by": "type", "linear": {"config": INT8}}, input_shape=(3,))
    graph = set_formats(graph, "_0", "weight", torch.tensor([[0, 2, 4], [8, 1, 3]]), 1)
    graph = set_formats(graph, "_0", "bias", torch.tensor([0, 5]), 2)
    return set_formats(graph, "_0", "data_in", torch.tensor([4, 0, 6]), 2)


@pytest.mark.parametrize("method", ["closed_form", "dispatch"])
@pytest.mark.parametrize("batch", [1, 4])
def test_two_layer_toy_by_hand(method: str, batch: int) -> None:
    """Per sample:
    _0 size: weight 0+2+4+8+1+3 = 18 bits, bias 0+5 = 5 → 23 bits over 8 parameters: mean 2.875, max 8,
    pruned 2/8 = 25 %. BitOPs: each MAC pairs w[o, i] with input i (a = [4, 0, 6]):
    row 0: 0·4 + 2·0 + 4·6 = 24; row 1: 8·4 + 1·0 + 3·6 = 50 → 74; bias adds 2 at mean 5/2 bits → 5; 79.
    _1 (float ReLU): 2 elementwise at 32 bits = 64. _2 (scalar int8): 2 MACs · 8 · 8 + 1 bias · 8 = 136,
    size 3 · 8 = 24, no per-element summary.
    Total: bitops 79 + 64 + 136 = 279 per sample, size 23 + 24 = 47 bits (6 bytes), average 47/11 bits."""
    report = analyze(toy(), (batch, 3), method=method)  # type: ignore[arg-type]
    first, relu, second = (report.layer(n) for n in ("_0", "_1", "_2"))
    assert (first.size_bits, first.bitops) == (23, 79 * batch)
    assert (first.mean_bits, first.max_bits, first.pruned_share) == (2.875, 8, 0.25)
    assert relu.bitops == 64 * batch
    assert (second.size_bits, second.bitops, second.mean_bits) == (24, 136 * batch, None)
    t = report.total
    assert (t.bitops, t.size_bits, t.model_size, t.params) == (279 * batch, 47, 6, 11)
    assert t.average_bitwidth == pytest.approx(47 / 11)
    assert "weight=integer(≤8,≤1,mean 3)" in first.precision
    plain = report.to_dict()["layers"]
    assert plain[0]["pruned_share"] == 0.25 and plain[2]["mean_bits"] is None


def test_scalar_reports_have_no_element_columns() -> None:
    """Without per-element formats the report's dict and CSV are as before: no mean_bits/max_bits/pruned_share."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    report = analyze(netcarve.quantize(model, {"by": "type", "linear": {"config": INT8}}, input_shape=(3,)), (1, 3))
    assert not report.has_elements
    assert "mean_bits" not in report.to_dict()["layers"][0] and "pruned_share" not in report.to_csv()


def test_cli_shows_mean_max_bits_and_pruned_share(app: typer.Typer, tmp_path: Path) -> None:
    """jsc-toy, integer(8,4) everywhere (bitops 20048 per sample, model_size 549 bytes: test_cli), then
    seq_blocks_2's weight (8 × 16) with rows 0-3 pruned (width 0) and rows 4-7 at 8 bits, saved and analysed
    from the checkpoint. seq_blocks_2: its 128 MACs at 8·8 become 64 at 8·8 → bitops −4096 = 15952 in total;
    its weight stores 64·8 = 512 bits instead of 1024 → 4392 − 512 = 3880 bits = 485 bytes. Its parameters:
    weight 512 + bias 8·8 = 576 bits over 136: mean 576/136, max 8, pruned 64/136. The table shows the three
    columns."""
    from netcarve.data.jsc_schema import jsc_info
    from netcarve.train.checkpoint import build_graph, save_checkpoint

    graph = build_graph(
        "jsc-toy", jsc_info("synthetic-jsc"), (("quantize", {"by": "type", "default": {"config": INT8}}),)
    )
    width = torch.full((8, 16), 8)
    width[:4] = 0
    path = save_checkpoint(tmp_path / "pe.pt", set_formats(graph, "seq_blocks_2", "weight", width, 4))
    result = CliRunner().invoke(app, ["analyze", "jsc-toy", "synthetic-jsc", "--load", str(path), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["total"]["bitops"], data["total"]["model_size"]) == (15952, 485)
    layer = next(item for item in data["layers"] if item["name"] == "seq_blocks_2")
    assert (layer["mean_bits"], layer["max_bits"], layer["pruned_share"]) == (576 / 136, 8, 64 / 136)
    table = CliRunner().invoke(app, ["analyze", "jsc-toy", "synthetic-jsc", "--load", str(path)])
    assert table.exit_code == 0, table.stderr
    for text in ("mean bits", "max bits", "pruned", "47.1%"):
        assert text in table.stdout
