"""A width that cannot be allocated is refused before anything is allocated, naming the layer and the size."""

from __future__ import annotations

import pytest
from torch import nn

import netcarve.transforms.width as width
from netcarve.errors import PassError
from netcarve.ir.graph import Graph
from netcarve.models import create_model
from netcarve.transforms.width import change_width
from netcarve.transforms.width.pass_ import width_transform_pass
from tests.transforms.helpers import INFO, entry


def _toy() -> Graph:
    """jsc-toy on JSC: BN, ReLU, seq_blocks_2 = Linear(16, 8), BN, ReLU, seq_blocks_5 = Linear(8, 8), …"""
    return Graph.from_module(create_model("jsc-toy", INFO), (16,))


def test_huge_multiplier_names_layer_outputs_parameters_and_gib() -> None:
    """× 1e6: seq_blocks_2 gets 8,000,000 outputs (8e6 · 16 weights + 8e6 biases), far beyond MAX_CHANNELS."""
    config = {"seq_blocks_2": entry("output_only", channel_multiplier=1e6)}
    with pytest.raises(PassError) as info:
        width_transform_pass(_toy(), config)
    assert str(info.value) == (
        "layer 'seq_blocks_2' would have 8,000,000 outputs (136,000,000 parameters, 0.51 GiB of float32; "
        "244.14 GiB for its outputs at a batch of 8192): too large to allocate (at most 65,536 channels a layer); "
        "choose a smaller multiplier or width"
    )


def test_parameter_limit_names_the_largest_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """8 → 64 outputs of the first layer make the next one 64 · 1000 + 1000 parameters: it is named."""
    monkeypatch.setattr(width, "MAX_PARAMETERS", 50_000)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1000), nn.ReLU(), nn.Linear(1000, 2))
    with pytest.raises(PassError) as info:
        change_width(model, {"_0": entry("output_only", channel_multiplier=8)})
    assert str(info.value) == (
        "layer '_2' would have 64 inputs (65,000 parameters, 0.00 GiB of float32; the whole model 67,322 "
        "parameters, 0.00 GiB): too large to allocate (at most 50,000 parameters); "
        "choose a smaller multiplier or width"
    )


def test_growth_below_the_limits_is_allowed_and_shrinking_a_big_model_too(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = _toy()
    base = sum(p.numel() for p in graph.module.parameters())
    wide = width_transform_pass(graph, {"seq_blocks_2": entry("output_only", channel_multiplier=8192)}).graph
    assert wide.submodule(wide.node("seq_blocks_2")).out_features == width.MAX_CHANNELS
    monkeypatch.setattr(width, "MAX_PARAMETERS", base // 2)  # the base model is "too big" already
    narrow = width_transform_pass(graph, {"seq_blocks_2": entry("output_only", channel_multiplier=0.5)}).graph
    assert narrow.submodule(narrow.node("seq_blocks_2")).out_features == 4
    with pytest.raises(PassError, match=rf"at most {base // 2:,} parameters\)"):
        width_transform_pass(graph, {"seq_blocks_2": entry("output_only", channel_multiplier=2)})


def test_limit_follows_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(width, "available_memory", lambda: 2**30)
    assert width.parameter_limit() == (2**30 // 16, ": 1.00 GiB of available memory at 16 bytes a trained parameter")
    monkeypatch.setattr(width, "available_memory", lambda: None)
    assert width.parameter_limit() == (2**28, "")


def test_failed_allocation_is_a_pass_error_naming_the_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback: torch's allocation failure (a RuntimeError) while resizing becomes a PassError."""

    def no_memory(module: nn.Module, kind: str, name: str, *args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: 64 GB")

    monkeypatch.setattr(width, "resize_layer", no_memory)
    with pytest.raises(PassError, match=r"^layer 'seq_blocks_2' \(- inputs, 16 outputs\): too large to allocate: "):
        width_transform_pass(_toy(), {"seq_blocks_2": entry("output_only", channel_multiplier=2)})

    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(width, "resize_layer", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):  # other errors are not disguised
        width_transform_pass(_toy(), {"seq_blocks_2": entry("output_only", channel_multiplier=2)})


def test_a_convolution_is_described_by_its_channels() -> None:
    """A Conv2d(2, 4, 3) × 1e5: 400,000 output channels (400,000 · 2 · 3 · 3 weights + 400,000 biases =
    7,600,000 parameters), named as channels (its kind's width attributes are in/out_channels)."""
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    with pytest.raises(PassError, match=r"^layer '_0' would have 400,000 output channels \(7,600,000 parameters"):
        change_width(model, {"_0": entry("output_only", channel_multiplier=1e5)}, input_shape=(2, 6, 6))
