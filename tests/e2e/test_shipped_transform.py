"""configs/transform_digits.toml end to end: train → transform (width then quantize) → QAT from the file."""

from __future__ import annotations

import json
from pathlib import Path

from netcarve.data import load_dataset
from netcarve.train import load_graph
from tests.e2e.cli import CONFIGS, run


def test_transform_digits_config(in_tmp: Path) -> None:
    """jsc-toy on digits (64 in, 10 out) with seq_blocks_2 widened 8 → 16 and Linears at 8 bits.

    params: BN64 128 + L(64,16) 1040 + BN16 32 + L(16,8) 136 + BN8 16 + L(8,10) 90 + BN10 20 = 1462;
    size_bits: Linear params (1040 + 136 + 90) · 8 + the other 196 · 32 = 10128 + 6272 = 16400.
    """
    code, out = run("train", "jsc-toy", "digits", "--max-epochs", "1", "--project", "toy")
    assert code == 0, out
    target = in_tmp / "q.pt"
    config = str(CONFIGS / "transform_digits.toml")
    args = (
        "transform",
        "jsc-toy",
        "digits",
        "-c",
        config,
        "--load",
        "runs/toy/latest/best.pt",
        "--output",
        str(target),
    )
    code, out = run(*args)
    assert code == 0, out
    info = load_dataset("digits").info
    graph = load_graph(target, "jsc-toy", info)
    assert sum(p.numel() for p in graph.module.parameters()) == 1462
    import netcarve

    assert netcarve.analyze(graph, (1, 64)).total.size_bits == 16400
    code, out = run(*args)
    assert code == 2 and "exists" in out  # nothing overwritten
    code, out = run("train", "jsc-toy", "digits", "--load", str(target), "--max-epochs", "1", "--project", "qat")
    assert code == 0, out
    qat = json.loads((in_tmp / "runs" / "qat" / "latest" / "metrics.json").read_text())
    assert 0.0 <= qat["test_accuracy"] <= 1.0
    trained = load_graph(in_tmp / "runs" / "qat" / "latest" / "best.pt", "jsc-toy", info)
    assert trained.spec is not None and [name for name, _ in trained.spec.transforms] == ["width", "quantize"]
