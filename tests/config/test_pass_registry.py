"""The pass registry on the config side: netcarve's passes are known, with their config models and aliases,
before any pass code (or torch) is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netcarve.config.pass_registry import PASSES, PassEntry, transform_config_model, transform_pass_names
from netcarve.config.passes import QuantizePassConfig, WidthPassConfig
from netcarve.config.run import RunConfig
from netcarve.errors import ConfigError

TORCH_FREE = """
import sys
from netcarve.config.pass_registry import PASSES, transform_config_model
from netcarve.config.passes import WidthPassConfig
from netcarve.config.run import RunConfig

config = RunConfig.model_validate({"passes": {"redefine": {"fc1": {"config": {"name": "both"}}}}})
assert isinstance(config.passes["redefine"], WidthPassConfig)
assert transform_config_model("channel_multiplier") is WidthPassConfig
assert PASSES.get("quantize").fn is None and PASSES.get("quantize").module == "netcarve.transforms.quantize.pass_"
assert "torch" not in sys.modules, "torch imported"
"""


def test_config_side_knows_the_passes_without_torch() -> None:
    subprocess.run([sys.executable, "-c", TORCH_FREE], check=True)


def test_each_pass_is_one_entry_with_its_aliases() -> None:
    assert transform_config_model("quantize") is QuantizePassConfig
    for name in ("width", "channel_multiplier", "redefine"):
        assert transform_config_model(name) is WidthPassConfig
        assert PASSES.entry(name).name == "width"
    assert transform_config_model("quantise") is None
    assert {"quantize", "width"} <= set(transform_pass_names())
    assert [e.name for e in PASSES.entries()].count("width") == 1


def test_unknown_pass_table_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown pass 'quantise' \(known: quantize, width"):
        RunConfig.model_validate({"passes": {"quantise": {}}})


def test_entry_validates_with_its_config_model() -> None:
    entry = PASSES.get("width")
    assert entry.validate(None) == WidthPassConfig()
    assert entry.validate({"by": "type"}) == WidthPassConfig(by="type")
    with pytest.raises(ConfigError, match=r"passes\.width\.bye"):
        entry.validate({"bye": "name"})
    plain = PassEntry("plain")
    assert plain.validate({"a": 1}) == {"a": 1}
