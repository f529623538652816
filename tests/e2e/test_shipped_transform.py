"""configs/transform_digits.toml end to end: train → transform (width then quantize) → QAT from the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netcarve.cli.app import app
from netcarve.data import load_dataset
from netcarve.train import load_graph

ROOT = Path(__file__).resolve().parents[2]


def test_transform_digits_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """jsc-toy on digits (64 in, 10 out) with seq_blocks_2 widened 8 → 16 and Linears at 8 bits.

    params: BN64 128 + L(64,16) 1040 + BN16 32 + L(16,8) 136 + BN8 16 + L(8,10) 90 + BN10 20 = 1462;
    size_bits: Linear params (1040 + 136 + 90) · 8 + the other 196 · 32 = 10128 + 6272 = 16400.
    """
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    out = runner.invoke(app, ["train", "jsc-toy", "digits", "--max-epochs", "1", "--project", "toy"])
    assert out.exit_code == 0, out.output
    config = str(ROOT / "configs" / "transform_digits.toml")
    target = tmp_path / "q.pt"
    args = [
        "transform",
        "jsc-toy",
        "digits",
        "-c",
        config,
        "--load",
        "runs/toy/latest/best.pt",
        "--output",
        str(target),
    ]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    graph = load_graph(target, "jsc-toy", load_dataset("digits").info)
    assert sum(p.numel() for p in graph.module.parameters()) == 1462
    import netcarve

    assert netcarve.analyze(graph, (1, 64)).total.size_bits == 16400
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "exists" in again.output  # nothing overwritten
    out = runner.invoke(
        app, ["train", "jsc-toy", "digits", "--load", str(target), "--max-epochs", "1", "--project", "qat"]
    )
    assert out.exit_code == 0, out.output
    qat = json.loads((tmp_path / "runs" / "qat" / "latest" / "metrics.json").read_text())
    assert 0.0 <= qat["test_accuracy"] <= 1.0
    trained = load_graph(tmp_path / "runs" / "qat" / "latest" / "best.pt", "jsc-toy", load_dataset("digits").info)
    assert trained.spec is not None and [name for name, _ in trained.spec.transforms] == ["width", "quantize"]
