"""The width transform's errors and warnings: each names the layers involved."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from netcarve.data.base import DatasetInfo
from netcarve.errors import ConfigError, NetcarveError
from netcarve.ir.graph import Graph
from netcarve.models import create_model
from netcarve.models.jsc import SeqBlocks
from netcarve.transforms.width.pass_ import width_transform_pass
from tests.transforms.helpers import Residual, entry

INFO = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))
CAPABLE = "seq_blocks_2, seq_blocks_4, seq_blocks_6"


def _three() -> Graph:
    return Graph.from_module(create_model("jsc-three-linear-layers", INFO), (16,))


def test_entry_on_relu_names_it_and_lists_capable_nodes() -> None:
    with pytest.raises(ConfigError, match=rf"'seq_blocks_3' names a relu node.*{CAPABLE}"):
        width_transform_pass(_three(), {"seq_blocks_3": entry("both", channel_multiplier=2)})


def test_entry_on_missing_node_lists_capable_nodes() -> None:
    with pytest.raises(ConfigError, match=rf"'seq_blocks_9' names no node.*did you mean.*{CAPABLE}"):
        width_transform_pass(_three(), {"seq_blocks_9": entry("both", channel_multiplier=2)})
    with pytest.raises(ConfigError, match="'linear' is an op type: set by = 'type'"):
        width_transform_pass(_three(), {"linear": entry("both", channel_multiplier=2)})
    with pytest.raises(ConfigError, match=r"'relu'.*only conv1d, conv2d, linear"):
        width_transform_pass(_three(), {"by": "type", "relu": entry("both", channel_multiplier=2)})


def test_contradictory_input_only_names_both_layers() -> None:
    """seq_blocks_2 outputs 16 × 2 = 32, but seq_blocks_4 input_only × 3 asks for 48 inputs."""
    config = {
        "seq_blocks_2": entry("output_only", channel_multiplier=2),
        "seq_blocks_4": entry("input_only", channel_multiplier=3),
    }
    with pytest.raises(ConfigError, match=r"'seq_blocks_4'.*48 inputs.*producer 'seq_blocks_2' outputs 32"):
        width_transform_pass(_three(), config)


def test_lab_config_that_gave_128_inputs_is_an_error() -> None:
    """The lab's model without ReLUs: seq_blocks_3 output × 4 (16 → 64) while seq_blocks_4 input_only × 2
    asks for 32 inputs. MASE built Linear(128, 5) here; netcarve refuses, naming both layers."""
    model = SeqBlocks(nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 5), nn.ReLU())
    config = {
        "seq_blocks_2": entry("output_only", channel_multiplier=2, parent_block_name="seq_blocks_1"),
        "seq_blocks_3": entry("output_only", channel_multiplier=4, parent_block_name="seq_blocks_2"),
        "seq_blocks_4": entry("input_only", channel_multiplier=2, parent_block_name="seq_blocks_3"),
    }
    with pytest.raises(ConfigError, match=r"'seq_blocks_4'.*32 inputs.*'seq_blocks_3' outputs 64"):
        width_transform_pass(Graph.from_module(model, (16,)), config)


def test_input_only_on_first_layer_names_the_model_input() -> None:
    with pytest.raises(ConfigError, match=r"'seq_blocks_2'.*32 inputs.*comes from 'x', whose width \(16\) is fixed"):
        width_transform_pass(_three(), {"seq_blocks_2": entry("input_only", channel_multiplier=2)})


def test_widening_the_output_layer_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"'seq_blocks_6'.*5 → 10.*model's output.*number of classes"):
        width_transform_pass(_three(), {"seq_blocks_6": entry("both", channel_multiplier=2)})


def test_contradictory_entry_keys() -> None:
    with pytest.raises(ConfigError, match=r"'seq_blocks_2': contradictory output widths"):
        width_transform_pass(_three(), {"seq_blocks_2": entry("output_only", channel_multiplier=2, out_features=24)})
    with pytest.raises(ConfigError, match=r"'seq_blocks_2': name = 'input_only'.*out_multiplier"):
        width_transform_pass(_three(), {"seq_blocks_2": entry("input_only", out_multiplier=2)})
    with pytest.raises(ConfigError, match=r"at least 1"):
        width_transform_pass(_three(), {"seq_blocks_2": entry(out_multiplier=0.01)})
    with pytest.raises(ConfigError, match=r"unknown key.*channel_multipler"):
        width_transform_pass(_three(), {"seq_blocks_2": {"config": {"channel_multipler": 2}}})


def test_residual_widening_one_producer_names_both() -> None:
    graph = Graph.from_module(Residual(), (4,))
    with pytest.raises(ConfigError, match=r"layers 'a' \(12 outputs.*\) and 'b' \(6 outputs, unchanged\).*'add'"):
        width_transform_pass(graph, {"a": entry("output_only", channel_multiplier=2)})


def test_change_that_cannot_pass_through_a_reshape() -> None:
    class Reshaping(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x).view(-1, 6))

    graph = Graph.from_module(Reshaping(), (4,))
    with pytest.raises(NetcarveError, match=r"'a'.*6 → 12.*node 'view' \(reshape\) cannot carry a width change"):
        width_transform_pass(graph, {"a": entry(out_multiplier=2)})


def test_parent_block_name_not_upstream_warns(caplog: pytest.LogCaptureFixture) -> None:
    config = {
        "seq_blocks_2": entry("output_only", channel_multiplier=2, parent_block_name="seq_blocks_1"),
        "seq_blocks_4": entry("both", channel_multiplier=2, parent_block_name="seq_blocks_6"),
    }
    with caplog.at_level(logging.WARNING, logger="netcarve"):
        width_transform_pass(_three(), config)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'seq_blocks_4': parent_block_name 'seq_blocks_6' is not upstream" in warnings[0]


def test_multiplier_without_name_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """MASE: name None ("NA") means the layer is left alone, whatever its channel_multiplier says."""
    with caplog.at_level(logging.WARNING, logger="netcarve"):
        result = width_transform_pass(_three(), {"seq_blocks_2": entry(None, channel_multiplier=2)})
    assert result.info.changed == ()
    assert any("'seq_blocks_2': channel_multiplier 2 ignored" in r.getMessage() for r in caplog.records)
