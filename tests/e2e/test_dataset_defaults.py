"""Each dataset's recommended training defaults: good enough with no flags, and below whatever the user sets."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest
from torch import nn

from netcarve.data import DATASETS, DatasetInfo
from netcarve.models import MODELS, create_model
from tests.e2e.cli import run

DIGITS = DatasetInfo("digits", 64, 10, tuple(str(i) for i in range(10)))
#: train rows of digits: 1797 rows, no duplicates, 70 % → floor(0.7 · 1797) = 1257
DIGITS_TRAIN_ROWS = 1257


def _hidden_layer_models() -> list[str]:
    """Registered models with more than one Linear layer, i.e. at least one hidden layer."""
    return [
        name
        for name in MODELS.names()
        if sum(isinstance(m, nn.Linear) for m in create_model(name, DIGITS).modules()) > 1
    ]


def test_the_hidden_layer_models_are_the_expected_ones() -> None:
    assert _hidden_layer_models() == ["jsc-toy", "jsc-three-linear-layers", "jsc-s", "hls4ml-jet"]


@pytest.mark.parametrize("model", _hidden_layer_models())
def test_no_flags_on_digits_reach_90_percent(in_tmp: Path, model: str) -> None:
    """``netcarve train MODEL digits`` with no flags: digits' defaults (40 epochs of SGD, batch 16, lr 0.03:
    ceil(1257 / 16) = 79 steps an epoch, 3160 in all) reach ≥ 90 % test accuracy (about 2 s each)."""
    code, out = run("train", model, "digits", "--project", "p")
    assert code == 0, out
    metrics = json.loads((in_tmp / "runs" / "p" / "latest" / "metrics.json").read_text())
    assert metrics["steps"] == 40 * math.ceil(DIGITS_TRAIN_ROWS / 16)
    assert metrics["test_accuracy"] >= 0.90, metrics


def test_toml_flag_and_set_beat_the_dataset_defaults(in_tmp: Path) -> None:
    """TOML max_epochs = 1, --batch-size 32 and --set training_optimizer=adam win over digits' defaults;
    the learning rate goes with the optimizer, so it is the global default 1e-3, not digits' 0.03 (an SGD
    rate). config.toml shows the effective values, and the training ran them: one epoch of
    ceil(1257 / 32) = 40 steps."""
    (in_tmp / "c.toml").write_text("max_epochs = 1\n")
    code, out = run(
        "train",
        "jsc-toy",
        "digits",
        "--config",
        "c.toml",
        "--batch-size",
        "32",
        "--set",
        "training_optimizer=adam",
        "--project",
        "p",
    )
    assert code == 0, out
    run_dir = in_tmp / "runs" / "p" / "latest"
    effective = tomllib.loads((run_dir / "config.toml").read_text())
    assert effective["max_epochs"] == 1
    assert effective["batch_size"] == 32
    assert effective["training_optimizer"] == "adam"
    assert effective["learning_rate"] == 1e-3
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 40


def test_no_flags_config_toml_shows_the_dataset_defaults(in_tmp: Path) -> None:
    """wine's defaults appear in the run's config.toml: 100 epochs of SGD, batch 16, lr 0.03 (--max-epochs 2
    keeps the run short and is written as given)."""
    code, out = run("train", "jsc-toy", "wine", "--max-epochs", "2", "--project", "w")
    assert code == 0, out
    effective = tomllib.loads((in_tmp / "runs" / "w" / "latest" / "config.toml").read_text())
    assert (effective["max_epochs"], effective["batch_size"]) == (2, 16)
    assert (effective["learning_rate"], effective["training_optimizer"]) == (0.03, "sgd")
    assert dict(DATASETS.entry("wine").defaults)["max_epochs"] == 100
