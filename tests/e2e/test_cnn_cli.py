"""digits-cnn (and a user's own CNN) end to end: train, test, analyze, transform, and the shipped joint
width × quantization search config."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

from netcarve.data import load_dataset
from netcarve.train import load_graph
from tests.e2e.cli import CONFIGS, run

TRANSFORM = """
[passes.width]
by = "type"
[passes.width.conv2d.config]
name = "output_only"
channel_multiplier = 2

[passes.quantize]
by = "name"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.seq_blocks_1.config]
name = "integer"
weight_width = 8
weight_frac_width = 6
[passes.quantize.seq_blocks_5.config]
name = "integer"
weight_width = 4
weight_frac_width = 3
"""

WIDEN_CONVS = """
[passes.width]
by = "type"
[passes.width.conv2d.config]
name = "output_only"
channel_multiplier = 2
"""

USER_CNN = """
from torch import nn


def make(in_features, num_classes):
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, num_classes),
    )
"""


def _checkpoint(root: Path, project: str) -> Path:
    found = sorted(root.glob(f"runs/{project}/*/best.pt"))
    assert found, f"no best.pt under runs/{project}"
    return found[-1]


def test_digits_cnn_train_test_analyze_transform(in_tmp: Path) -> None:
    """After the width transform (conv1 8 → 16, conv2 16 → 32, Linear 128 → 10) and weights at 8 and 4 bits:
    params conv1 16·9 + 16 = 160, BN 32, conv2 32·16·9 + 32 = 4640, Linear 1280 + 10 = 1290 → 6122;
    size_bits 144·8 + 4608·4 + (16 + 32 + 32 + 1290)·32 = 1152 + 18432 + 43840 = 63424."""
    code, out = run("train", "digits-cnn", "digits", "--max-epochs", "3", "--project", "cnn")
    assert code == 0, out
    ckpt = _checkpoint(in_tmp, "cnn")
    code, out = run("test", "digits-cnn", "digits", "--load", str(ckpt))
    assert code == 0 and "accuracy" in out, out
    code, out = run("analyze", "digits-cnn", "digits", "--batch-size", "8", "--format", "json", "--output", "a.json")
    assert code == 0, out
    total = json.loads((in_tmp / "a.json").read_text())["total"]
    assert (total["params"], total["macs"], total["flops"]) == (1914, 189440, 413776)
    (in_tmp / "t.toml").write_text(TRANSFORM)
    args = ("transform", "digits-cnn", "digits", "-c", "t.toml", "--load", str(ckpt), "--output", "t.pt")
    code, out = run(*args)
    assert code == 0, out
    graph = load_graph(in_tmp / "t.pt", "digits-cnn", load_dataset("digits").info)
    assert sum(p.numel() for p in graph.module.parameters()) == 6122
    import netcarve

    assert netcarve.analyze(graph, (1, 64)).total.size_bits == 63424
    code, out = run("train", "digits-cnn", "digits", "--load", "t.pt", "--max-epochs", "1", "--project", "qat")
    assert code == 0, out


def test_user_cnn_file(in_tmp: Path) -> None:
    """Conv2d(1, 4, 3) on 8×8 → 6×6 → MaxPool 3×3 → Flatten 36 → Linear(36, 10): params 40 + 370 = 410;
    widening the conv ×2 makes the Linear read 72 features."""
    (in_tmp / "cnn.py").write_text(textwrap.dedent(USER_CNN))
    code, out = run("train", "cnn.py:make", "digits", "--max-epochs", "1", "--project", "u")
    assert code == 0, out
    code, out = run("analyze", "cnn.py:make", "digits", "--format", "json", "--output", "u.json")
    assert code == 0, out
    assert json.loads((in_tmp / "u.json").read_text())["total"]["params"] == 410
    (in_tmp / "w.toml").write_text(WIDEN_CONVS)
    args = ("transform", "cnn.py:make", "digits", "-c", "w.toml", "--load", str(_checkpoint(in_tmp, "u")))
    code, out = run(*args, "--output", "w.pt")
    assert code == 0, out
    graph = load_graph(in_tmp / "w.pt", "cnn.py:make", load_dataset("digits").info)
    assert graph.module.get_submodule("5").in_features == 72


def test_shipped_cnn_search(in_tmp: Path) -> None:
    """8 configurations (2 × 2 widths × 2 conv weight widths), brute force: each run once; candidates over
    3072 bytes are pruned before training, e.g. both convs ×2 at 8 bits: 6122 params."""
    code, out = run("search", "--config", str(CONFIGS / "search_joint_digits_cnn.toml"), "--project", "s")
    assert code == 0, out
    with (in_tmp / "runs" / "s" / "latest" / "trials.csv").open() as fh:
        trials = list(csv.DictReader(fh))
    assert len(trials) == 8 and {t["state"] for t in trials} <= {"COMPLETE", "PRUNED"}
    assert all(float(t["model_size"]) > 3072 for t in trials if t["state"] == "PRUNED")
    assert any(t["state"] == "COMPLETE" for t in trials)
    widest = [t for t in trials if t["params"] == "6122.0"]
    assert len(widest) == 2
