"""API conventions of ``netcarve.analyze``: example inputs as fvcore/FlopCounterMode take them, the model's
own dtype, trainable vs frozen parameters, and parameters of submodules that ``forward`` never calls."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from netcarve import analyze
from netcarve.errors import ModelError
from netcarve.ir import Graph
from netcarve.models import create_model
from tests.analysis.test_api import JSC


def mlp(dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """(B, 16) → Linear(16, 8) → ReLU → Linear(8, 5), seeded."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5)).to(dtype)


class WithSpare(nn.Module):
    """(B, 16) → fc = Linear(16, 5); ``spare`` = Linear(16, 3) and ``scale`` (7 elements) are never used."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 5)
        self.spare = nn.Linear(16, 3)
        self.scale = nn.Parameter(torch.ones(7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


@pytest.mark.parametrize("method", ["auto", "dispatch"])
def test_a_tuple_of_one_tensor_is_the_tensor(method: str) -> None:
    model = create_model("jsc-s", JSC)
    x = torch.randn(8, 16)
    assert analyze(model, (x,), method=method) == analyze(model, x, method=method)  # type: ignore[arg-type]
    assert analyze(model, [x]) == analyze(model, (8, 16))


def test_a_tuple_of_two_inputs_is_an_error() -> None:
    x = torch.zeros(2, 16)
    with pytest.raises(ModelError, match="one tensor"):
        analyze(mlp(), (x, x))
    with pytest.raises(ModelError, match="one tensor"):
        analyze(mlp(), (x, 3))  # type: ignore[arg-type]


@pytest.mark.parametrize("example", [(4, 16), "tensor", "tuple"])
def test_a_float64_model_is_analyzed_in_float64(example: object) -> None:
    """mlp() at B = 4 in float64 counts what it counts in float32; what is stored takes 64 bits.

    params 16·8 + 8 + 8·5 + 5 = 181; MACs 4·16·8 + 4·8·5 = 512 + 160 = 672; flops 2·672 + bias adds
    4·(8 + 5) = 52 + ReLU 4·8 = 32 → 1428 (the same in both dtypes).
    float64: size_bits 181·64 = 11584, model_size 1448 bytes; output bytes (4·8 + 4·8 + 4·5)·8 = 672;
    bitops 672·64·64 + 52·64 + 32·64 = 2752512 + 3328 + 2048 = 2757888; average_bitwidth 64.
    float32: size_bits 5792, model_size 724, output bytes 336, bitops 672·32·32 + 84·32 = 690816.
    """
    x = torch.zeros(4, 16, dtype=torch.float64)
    inputs = {"tensor": x, "tuple": (x,)}.get(example, example)  # type: ignore[call-overload]
    wide = analyze(mlp(torch.float64), inputs)
    narrow = analyze(mlp(), (4, 16))
    for key in ("params", "frozen_params", "macs", "flops", "backward_dgrad_macs", "backward_wgrad_macs"):
        assert getattr(wide.total, key) == getattr(narrow.total, key)
    assert (wide.total.params, wide.total.macs, wide.total.flops) == (181, 672, 1428)
    assert (wide.total.size_bits, wide.total.model_size, wide.total.activation_bytes) == (11584, 1448, 672)
    assert (narrow.total.size_bits, narrow.total.model_size, narrow.total.activation_bytes) == (5792, 724, 336)
    assert (wide.total.bitops, narrow.total.bitops) == (2757888, 690816)
    assert wide.total.average_bitwidth == 64.0
    assert {r.precision for r in wide.layers} == {"float64"}
    fast = analyze(mlp(torch.float64), (4, 16), method="closed_form")
    assert replace(fast, method="dispatch") == analyze(mlp(torch.float64), (4, 16), method="dispatch")


def test_a_failing_forward_names_the_batch_and_dtype_given() -> None:
    """A float32 tensor into a float64 model fails, and the message names (4, 16), not batch 1."""
    with pytest.raises(ModelError, match=r"\(4, 16\) \(float32\)"):
        analyze(mlp(torch.float64), torch.zeros(4, 16))


@pytest.mark.parametrize("method", ["closed_form", "dispatch"])
def test_frozen_parameters_are_reported_apart(method: str) -> None:
    """mlp() with its first Linear frozen, at B = 2: params 8·5 + 5 = 45 trainable, 16·8 + 8 = 136
    frozen; size_bits (45 + 136)·32 = 5792 (both are stored). Backward: no wgrad for the frozen layer and no
    dgrad for the second (its input depends on no trainable tensor): wgrad 2·8·5 = 80, dgrad 0."""
    model = mlp()
    model[0].requires_grad_(False)
    report = analyze(model, (2, 16), method=method)  # type: ignore[arg-type]
    total = report.total
    assert (total.params, total.frozen_params, total.size_bits) == (45, 136, 5792)
    assert (total.backward_wgrad_macs, total.backward_dgrad_macs) == (80, 0)
    assert total.average_bitwidth == 32.0
    first = report.layer("_0")
    assert (first.params, first.frozen_params) == (0, 136)
    assert json.loads(json.dumps(report.to_dict()))["total"]["frozen_params"] == 136
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [r["frozen_params"] for r in rows] == ["136", "0", "0", "136"]


def test_unused_submodules_and_parameters_are_counted() -> None:
    """WithSpare at B = 3: fc holds 16·5 + 5 = 85, the never-called spare 16·3 + 3 = 51 and scale 7:
    params 143, model_size 143·4 = 572 bytes; MACs only from fc: 3·16·5 = 240."""
    model = WithSpare()
    report = analyze(model, (3, 16))
    assert (report.total.params, report.total.model_size, report.total.macs) == (143, 572, 240)
    spare, scale = report.layer("spare"), report.layer("scale")
    assert (spare.kind, spare.target, spare.params, spare.macs) == ("unused", "Linear", 51, 0)
    assert (scale.kind, scale.params, scale.size_bits) == ("unused", 7, 224)
    assert analyze(model, (3, 16), method="dispatch").total == report.total
    graph = Graph.from_module(model, (16,))  # the graph keeps them, so the model's state dict loads into it
    assert sorted(graph.module.state_dict()) == sorted(model.state_dict())
    assert analyze(graph, (3, 16)).total == report.total
