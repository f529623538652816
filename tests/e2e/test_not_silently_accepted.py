"""Inputs that used to be accepted silently (or crashed): each is exit code 2 and one ``error:`` line naming
what the user wrote, with no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netcarve.data.base import DatasetInfo
from netcarve.train import build_graph, save_checkpoint
from tests.e2e.cli import run_error

DIGITS = DatasetInfo("digits", 64, 10, tuple(str(i) for i in range(10)))

USER_MODELS = """
from torch import nn

def make(in_features, num_classes):
    raise ValueError("hidden width must be even")

def three(in_features, num_classes):
    return nn.Linear(in_features, 3)
"""


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("mine.py:make", "error: user model 'mine.py:make' raised ValueError: hidden width must be even"),
        ("os.path:join", "error: user model 'os.path:join' raised TypeError: expected str, bytes or os.PathLike"),
        ("mine.py:three", "error: user model 'mine.py:three' has output size 3, but dataset 'digits' has 10 classes"),
    ],
)
def test_bad_user_models(in_tmp: Path, model: str, expected: str) -> None:
    (in_tmp / "mine.py").write_text(USER_MODELS)
    line = run_error("train", model, "digits", "--max-epochs", "1")
    assert line.startswith(expected)
    assert not (in_tmp / "runs").exists()  # nothing was trained


def test_boolean_for_an_integer(in_tmp: Path) -> None:
    (in_tmp / "c.toml").write_text("max_epochs = true\n")
    line = run_error("train", "jsc-toy", "digits", "--config", "c.toml")
    assert line == "error: c.toml: invalid value for 'max_epochs': a boolean is not an integer (got True)"
    line = run_error("train", "jsc-toy", "digits", "--set", "search.strategy.setup.n_trials=false")
    key = "search.strategy.setup.n_trials"
    assert line == f"error: --set: invalid value for {key!r}: a boolean is not an integer (got False)"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[passes.quantize]\nby = 'type'\n[passes.quantize.relu.config]\nname = 'integer'\nweight_width = 8\n",
            "error: quantize entry 'relu' sets weight_width, but node 'seq_blocks_1' (relu) has no weight operand; "
            "its operands: data_in, data_out",
        ),
        (
            "[passes.quantize.linear.config]\nname = 'integer'\nweight_width = 8\nweight_frac_width = 9\n",
            "error: p.toml: invalid value for 'passes.quantize.linear.config.weight_frac_width': weight_frac_width = 9 "
            "is above weight_width = 8: a frac width must be in 0..8 (got 9)",
        ),
        (
            "[passes.quantize.linear.config]\nname = 'minifloat_ieee'\nweight_width = 8\nweight_exponent_width = 4\n"
            "weight_exponent_bias = 40\n",
            "error: node 'seq_blocks_2', weight: minifloat_ieee: exponent_bias 40 (exponent_width 4, 3 mantissa bits) "
            "represents magnitudes from 2^-42 to 5.588e-08, none of them in [2^-24, 2^24], so every value would round "
            "to zero or saturate; use an exponent_bias in -26..39",
        ),
    ],
)
def test_quantize_settings_that_mean_nothing(in_tmp: Path, toml: str, expected: str) -> None:
    (in_tmp / "p.toml").write_text(toml)
    assert run_error("transform", "jsc-toy", "digits", "--config", "p.toml") == expected
    assert not list(in_tmp.glob("runs/*/*/*.pt"))  # no checkpoint written


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"version": 3}, " has 'netcarve-checkpoint' version 3, which this netcarve cannot read (supported: "),
        ({"format": "other"}, " has format 'other', which this netcarve cannot read (supported: "),
        ({"transforms": [["quantise", {}]]}, ": spec.transforms[0] (pass 'quantise') is invalid: unknown pass"),
        ({"transforms": {"quantize": {}}}, ": its spec.transforms is {'quantize': {}}, not a list of"),
    ],
)
def test_checkpoints_this_version_cannot_read(in_tmp: Path, change: dict, expected: str) -> None:
    save_checkpoint(in_tmp / "ok.pt", build_graph("jsc-toy", DIGITS))
    payload = torch.load(in_tmp / "ok.pt", weights_only=True)
    if "transforms" in change:
        payload["spec"]["transforms"] = change["transforms"]
    else:
        payload.update(change)
    torch.save(payload, in_tmp / "c.pt")
    for command in ("test", "train"):
        assert run_error(command, "jsc-toy", "digits", "--load", "c.pt").startswith(
            f"error: checkpoint 'c.pt'{expected}"
        )
