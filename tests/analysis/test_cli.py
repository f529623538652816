"""``netcarve analyze`` through a throwaway typer app holding only that command (the ``app`` fixture)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner


def run(app: typer.Typer, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["analyze", *args])


def test_json_totals_of_jsc_s(app: typer.Typer) -> None:
    """jsc-s at the default batch size 1 (derivation in test_jsc_counts): params 5615, model_size 22460,
    MACs 5280, flops 11246, bitops 5428672, backward 21806 (dgrad = wgrad = 5280), peak 512 bytes."""
    result = run(app, "jsc-s", "synthetic-jsc", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    total = data["total"]
    assert data["batch_size"] == 1
    assert (total["params"], total["model_size"], total["macs"]) == (5615, 22460, 5280)
    assert (total["flops"], total["bitops"], total["backward_flops"]) == (11246, 5428672, 21806)
    assert (total["backward_dgrad_macs"], total["backward_wgrad_macs"]) == (5280, 5280)
    assert total["peak_activation_bytes"] == 512
    assert len(data["layers"]) == 14


def test_mase_convention_and_batch_size(app: typer.Typer) -> None:
    """jsc-tiny, --convention mase --batch-size 8: the lab report's 1320 flops and 42240 bitops."""
    result = run(app, "jsc-tiny", "synthetic-jsc", "--convention", "mase", "--batch-size", "8", "--format", "json")
    assert result.exit_code == 0, result.stderr
    total = json.loads(result.stdout)["total"]
    assert (total["flops"], total["bitops"], total["model_size"]) == (1320, 42240, 468)


def test_table_has_units_and_a_total_row(app: typer.Typer) -> None:
    """jsc-tiny at B = 1: total flops 250 (see test_jsc_counts), model_size 468 bytes."""
    result = run(app, "jsc-tiny", "synthetic-jsc")
    assert result.exit_code == 0, result.stderr
    for text in ("MACs", "FLOPs", "BitOPs", "(bits)", "(bytes)", "total", "250", "model_size: 468 bytes"):
        assert text in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("jsc-s", "synthetic-jsc", "--format", "xml"), "--format must be one of table, json, csv"),
        (("jsc-q", "synthetic-jsc"), "unknown model 'jsc-q'"),
        (("jsc-s", "synthetic-jsc", "--convention", "fvcore"), "--convention must be one of"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(app: typer.Typer, args: tuple[str, ...], message: str) -> None:
    result = run(app, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_output_file_is_not_overwritten_without_force(app: typer.Typer, tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    target.write_text("keep")
    result = run(app, "jsc-tiny", "synthetic-jsc", "--format", "csv", "--output", str(target))
    assert result.exit_code == 2
    assert "--force" in result.stderr
    assert target.read_text() == "keep"
    result = run(app, "jsc-tiny", "synthetic-jsc", "--format", "csv", "--output", str(target), "--force")
    assert result.exit_code == 0, result.stderr
    assert target.read_text().splitlines()[-1].startswith("total,")


def test_model_and_dataset_from_config(app: typer.Typer, tmp_path: Path) -> None:
    """MASE-style TOML with top-level model/dataset; jsc-toy has 327 params."""
    config = tmp_path / "c.toml"
    config.write_text('model = "jsc-toy"\ndataset = "synthetic-jsc"\n')
    result = run(app, "--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["total"]["params"] == 327


def test_load_a_quantized_checkpoint(app: typer.Typer, tmp_path: Path) -> None:
    """A jsc-toy checkpoint quantized to integer(8, 4) (data_in, weight, bias of Linear and ReLU): the
    analysis sees the rebuilt quantized graph — bitops 20048 per sample (derivation in test_ops)."""
    from netcarve.data.jsc_schema import jsc_info
    from netcarve.train.checkpoint import build_graph, save_checkpoint

    config = {"name": "integer", "data_in_width": 8, "data_in_frac_width": 4, "weight_width": 8}
    config |= {"weight_frac_width": 4, "bias_width": 8, "bias_frac_width": 4}
    quantize = {"by": "type", "default": {"config": config}}
    graph = build_graph("jsc-toy", jsc_info("synthetic-jsc"), (("quantize", quantize),))
    path = save_checkpoint(tmp_path / "q.pt", graph)
    result = run(app, "jsc-toy", "synthetic-jsc", "--load", str(path), "--format", "json")
    assert result.exit_code == 0, result.stderr
    total = json.loads(result.stdout)["total"]
    assert (total["bitops"], total["flops"], total["model_size"]) == (20048, 670, 549)
