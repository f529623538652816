"""``netcarve analyze --input-shape`` for a model whose input is not the dataset's flat feature vector."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from tests.e2e.cli import run, run_error

SPEC = "tests.analysis.test_input_shape:small_conv"


class SmallConv(nn.Module):
    """(B, 1, 8, 8) → Conv2d(1, 4, 3) → ReLU → flatten → Linear(4·6·6 = 144, num_classes)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3)
        self.fc = nn.Linear(144, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def small_conv(in_features: int, num_classes: int) -> nn.Module:
    return SmallConv(num_classes)


@pytest.mark.parametrize("shape", ["1,8,8", "1x8x8", "(1, 8, 8)"])
def test_conv_model_on_digits_images(shape: str) -> None:
    """digits (8x8 images, 10 classes) as (B, 1, 8, 8) at --batch-size 2:
    conv MACs 2·(4·6·6)·(1·3·3) = 2592, fc MACs 2·144·10 = 2880, total 5472;
    params conv 4·9 + 4 = 40, fc 144·10 + 10 = 1450, total 1490;
    flops: conv 2·2592 + bias 2·144 = 5472, ReLU 2·144 = 288, fc 2·2880 + 2·10 = 5780 → 11540."""
    code, out = run("analyze", SPEC, "digits", "--input-shape", shape, "--batch-size", "2", "--format", "json")
    assert code == 0, out
    data = json.loads(out)
    total = data["total"]
    assert (total["macs"], total["params"], total["flops"]) == (5472, 1490, 11540)
    assert [layer["output_shape"] for layer in data["layers"]] == [[2, 4, 6, 6], [2, 4, 6, 6], [2, 144], [2, 10]]
    assert data["batch_size"] == 2


@pytest.mark.parametrize("value", ["0,8,8", "a", "", "1,,8", "1.5,8", "-1,8", "100000x100000"])
def test_bad_input_shapes_are_one_line_errors(value: str) -> None:
    line = run_error("analyze", SPEC, "digits", "--input-shape", value)
    assert "--input-shape" in line


def test_a_shape_the_model_does_not_take_names_the_option() -> None:
    line = run_error("analyze", "jsc-toy", "digits", "--input-shape", "1,8,8", "--batch-size", "3")
    assert line.startswith("error: --input-shape 1,8,8:") and "(3, 1, 8, 8)" in line


def test_input_shape_with_load_is_refused() -> None:
    line = run_error("analyze", SPEC, "digits", "--input-shape", "1,8,8", "--load", "x.pt")
    assert "--input-shape" in line and "--load" in line
