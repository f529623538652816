"""Config errors name keys as the user wrote them in TOML, never pydantic's internal locations."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from netcarve.config.passes import QuantizePassConfig, WidthPassConfig, coerce_pass_config
from netcarve.configure import build_config
from netcarve.errors import ConfigError
from netcarve.transforms.width import change_width


def error_of(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        build_config(path)
    message = str(info.value)
    assert "entries" not in message
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_quantize_layer_key_is_the_toml_key(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[passes.quantize.linear.config]\nname = 'integer'\nweight_width = 0\n")
    assert message == (
        "invalid value for 'passes.quantize.linear.config.weight_width': "
        "Input should be greater than or equal to 1 (got 0)"
    )


def test_fixed_key_of_a_pass_names_the_pass(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[passes.width]\ninit = 'xavier'\n")
    assert message.startswith("invalid value for 'passes.width.init': ")
    assert "(got 'xavier')" in message


def test_alias_pass_keeps_the_users_table_name(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[passes.channel_multiplier.seq_blocks_2.config]\nchannel_multiplier = -1\n")
    assert message.startswith("invalid value for 'passes.channel_multiplier.seq_blocks_2.config.channel_multiplier'")


def test_mistyped_layer_key_suggests_the_valid_one(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[passes.quantize.default.config]\nweigth_width = 8\n")
    assert message == "unknown key 'passes.quantize.default.config.weigth_width'; did you mean 'weight_width'?"


def test_mistyped_fixed_key_of_a_pass_is_not_read_as_a_layer(tmp_path: Path) -> None:
    """``inti = "random"`` would otherwise be a layer entry named 'inti' that is not a table."""
    assert error_of(tmp_path, "[passes.width]\ninti = 'random'\n") == (
        "unknown key 'passes.width.inti'; did you mean 'init'?"
    )
    message = error_of(tmp_path, "[passes.width]\nfc1 = 3\n")
    assert message.startswith("'passes.width.fc1' must be a layer entry (a table holding a config table)")


def test_several_problems_each_name_their_key(tmp_path: Path) -> None:
    text = "[passes.width.seq_blocks_2.config]\nchannel_multiplier = 0\nwidht = 2\n"
    message = error_of(tmp_path, text)
    assert "invalid value for 'passes.width.seq_blocks_2.config.channel_multiplier'" in message
    assert "unknown key 'passes.width.seq_blocks_2.config.widht'" in message


def test_unknown_pass_message_has_no_pydantic_prefix(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[passes.quantise]\nby = 'type'\n")
    known = "quantize, width, fold_batchnorm, freeze_learned"
    assert message == f"invalid value for 'passes': unknown pass 'quantise' (known: {known})"


def test_list_positions_and_search_keys(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[search.strategy.metrics.accuracy]\nscale = 'big'\n")
    assert message.startswith("invalid value for 'search.strategy.metrics.accuracy.scale'")
    message = error_of(tmp_path, "[search.search_space]\nname = 'x'\n[search.search_space.seed.default]\nconfig = 3\n")
    assert message.startswith("invalid value for 'search.search_space.seed.default.config': ")


def test_python_api_names_the_pass_table() -> None:
    """``change_width(model, dict)`` validates the dict as ``[passes.width]``."""
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ConfigError) as info:
        change_width(model, {"_0": {"config": {"name": "output_only", "channel_multiplier": -2}}})
    assert str(info.value) == (
        "invalid value for 'passes.width._0.config.channel_multiplier': Input should be greater than 0 (got -2)"
    )
    with pytest.raises(ConfigError, match=r"'passes\.quantize\.linear\.config\.weight_width'"):
        coerce_pass_config(QuantizePassConfig, {"linear": {"config": {"weight_width": 99}}}, "passes.quantize")
    with pytest.raises(ConfigError, match=r"^width config: unknown key 'bye'; did you mean 'by'\?"):
        coerce_pass_config(WidthPassConfig, {"bye": "name"}, "width config")
