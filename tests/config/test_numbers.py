"""Numbers in configs: no boolean where a number is expected (any config model), frac widths within the width."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from pydantic import ValidationError

import netcarve.config
from netcarve.config.base import Strict, number_kind, takes_text
from netcarve.config.passes import QuantLayerConfig
from netcarve.configure import build_config
from netcarve.errors import ConfigError


def _config_models() -> list[type[Strict]]:
    """Every config model: all subclasses of Strict defined in netcarve.config's modules."""
    for info in pkgutil.iter_modules(netcarve.config.__path__):
        importlib.import_module(f"netcarve.config.{info.name}")
    found: list[type[Strict]] = []
    todo = list(Strict.__subclasses__())
    while todo:
        model = todo.pop()
        found.append(model)
        todo.extend(model.__subclasses__())
    return found


NUMBER_FIELDS = [
    (model, name, kind)
    for model in _config_models()
    for name, field in model.model_fields.items()
    if (kind := number_kind(field.annotation)) is not None
]


def test_the_walk_finds_the_known_number_fields() -> None:
    found = {(m.__name__, n) for m, n, _ in NUMBER_FIELDS}
    assert {("RunConfig", "max_epochs"), ("RunConfig", "learning_rate"), ("StrategySetup", "n_trials")} <= found
    assert {("QuantLayerConfig", "weight_width"), ("WidthLayerConfig", "channel_multiplier"), ("Bound", "max")} <= found
    assert ("StrategyConfig", "eval_mode") not in found  # a bool field


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize(("model", "name", "kind"), NUMBER_FIELDS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_every_int_or_float_field_refuses_a_boolean(model: type[Strict], name: str, kind: str, value: bool) -> None:
    with pytest.raises(ValidationError) as err:
        model.model_validate({name: value})
    mine = [e for e in err.value.errors() if e["loc"] == (name,)]
    assert len(mine) == 1 and mine[0]["msg"] == f"Value error, a boolean is not {kind}"


@pytest.mark.parametrize(("model", "name", "kind"), NUMBER_FIELDS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_every_int_or_float_field_refuses_a_number_in_quotes(model: type[Strict], name: str, kind: str) -> None:
    """``max_epochs = "1"`` was read as 1: a string is refused by every number field that takes no text
    (``population`` takes "auto": its own check refuses "1")."""
    with pytest.raises(ValidationError) as err:
        model.model_validate({name: "1"})
    mine = [e for e in err.value.errors() if e["loc"] == (name,)]
    assert len(mine) == 1
    if not takes_text(model.model_fields[name].annotation):
        assert mine[0]["msg"] == f"Value error, a string is not {kind}: write the number without quotes"


INT_FIELDS = [(model, name) for model, name, kind in NUMBER_FIELDS if kind == "an integer"]


@pytest.mark.parametrize(("model", "name"), INT_FIELDS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_every_int_field_refuses_a_float_even_a_whole_one(model: type[Strict], name: str) -> None:
    """``max_epochs = 2.0`` was read as 2 (and 2.5 refused): an integer setting takes integers only."""
    with pytest.raises(ValidationError) as err:
        model.model_validate({name: 2.0})
    assert [e for e in err.value.errors() if e["loc"] == (name,)]


def test_max_epochs_in_quotes_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('max_epochs = "1"\n')
    with pytest.raises(ConfigError) as err:
        build_config(path)
    assert str(err.value) == (
        f"{path}: invalid value for 'max_epochs': a string is not an integer: write the number without quotes (got '1')"
    )


FLOAT_FIELDS = [(model, name) for model, name, kind in NUMBER_FIELDS if kind == "a number"]


def test_the_walk_finds_the_known_float_fields() -> None:
    found = {(m.__name__, n) for m, n in FLOAT_FIELDS}
    assert {("RunConfig", "learning_rate"), ("TrainingSettings", "weight_decay"), ("StrategySetup", "timeout")} <= found
    assert {("Bound", "min"), ("MetricConfig", "scale"), ("WidthLayerConfig", "channel_multiplier")} <= found


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")], ids=str)
@pytest.mark.parametrize(("model", "name"), FLOAT_FIELDS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_every_float_field_refuses_inf_and_nan(model: type[Strict], name: str, value: float) -> None:
    """Each float setting takes finite numbers only: ``learning_rate = inf`` passed ``gt=0`` and training
    ended "loss is nan"."""
    with pytest.raises(ValidationError) as err:
        model.model_validate({name: value})
    mine = [e for e in err.value.errors() if e["loc"] == (name,)]
    assert [e["msg"] for e in mine] == ["Input should be a finite number"]


@pytest.mark.parametrize("text", ["inf", "+inf", "-inf", "nan"])
def test_set_learning_rate_inf_names_the_key(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(None, assignments=[f"learning_rate={text}"])
    assert (
        str(err.value)
        == f"--set: invalid value for 'learning_rate': Input should be a finite number (got {float(text)})"
    )


def test_max_epochs_true_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("max_epochs = true\n")
    with pytest.raises(ConfigError) as err:
        build_config(path)
    assert str(err.value) == f"{path}: invalid value for 'max_epochs': a boolean is not an integer (got True)"
    assert err.value.__cause__ is not None


@pytest.mark.parametrize(
    ("key", "value", "kind"),
    [
        ("learning_rate", "false", "a number"),
        ("search.strategy.setup.n_trials", "true", "an integer"),
        ("passes.quantize.linear.config.weight_width", "true", "an integer"),
        ("passes.width.seq_blocks_2.config.channel_multiplier", "true", "a number"),
    ],
)
def test_nested_booleans_name_the_dotted_key(key: str, value: str, kind: str) -> None:
    with pytest.raises(ConfigError, match=rf"invalid value for '{key}': a boolean is not {kind}"):
        build_config(None, assignments=[f"{key}={value}"])


def test_booleans_stay_fine_where_a_bool_is_expected_and_ints_where_a_float_is() -> None:
    cfg = build_config(None, assignments=["learning_rate=1", "search.strategy.eval_mode=false"])
    assert cfg.learning_rate == 1.0 and cfg.search is not None and cfg.search.strategy.eval_mode is False


@pytest.mark.parametrize("frac", [0, 4, 8])
def test_frac_width_from_zero_to_the_width_is_accepted(frac: int) -> None:
    assert QuantLayerConfig(weight_width=8, weight_frac_width=frac).weight_frac_width == frac


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"weight_width": 8, "weight_frac_width": 9},
            "weight_frac_width = 9 is above weight_width = 8: a frac width must be in 0..8",
        ),
        (
            {"data_in_width": 4, "data_in_frac_width": -1},
            "data_in_frac_width = -1 is negative: a frac width must be in 0..data_in_width",
        ),
        ({"bias_frac_width": -2}, "bias_frac_width = -2 is negative"),  # no width: still never meaningful
    ],
)
def test_frac_width_outside_the_width_is_an_error_naming_key_value_and_width(settings: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        QuantLayerConfig.model_validate(settings)


def test_frac_width_error_names_the_dotted_key_in_a_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[passes.quantize.linear.config]\nname = "integer"\ndata_out_width = 6\ndata_out_frac_width = 7\n')
    with pytest.raises(ConfigError) as err:
        build_config(path)
    assert str(err.value) == (
        f"{path}: invalid value for 'passes.quantize.linear.config.data_out_frac_width': "
        "data_out_frac_width = 7 is above data_out_width = 6: a frac width must be in 0..6 (got 7)"
    )


def test_frac_width_text_other_than_auto_is_one_error_naming_the_key(tmp_path: Path) -> None:
    """A misspelt "auto" gives one line naming the dotted key (not one error per member of int | "auto"); "auto"
    on data_in is refused by name, on weight accepted."""
    path = tmp_path / "c.toml"
    head = '[passes.quantize.linear.config]\nname = "integer"\n'
    path.write_text(head + 'weight_width = 3\nweight_frac_width = "autoo"\n')
    with pytest.raises(ConfigError) as err:
        build_config(path)
    assert str(err.value) == (
        f"{path}: invalid value for 'passes.quantize.linear.config.weight_frac_width': "
        "weight_frac_width must be an integer or \"auto\" (got 'autoo')"
    )
    path.write_text(head + 'data_in_width = 8\ndata_in_frac_width = "auto"\n')
    with pytest.raises(ConfigError, match=r"'passes.quantize.linear.config.data_in_frac_width': data_in_frac_width = "):
        build_config(path)
    path.write_text(head + 'weight_width = 3\nweight_frac_width = "auto"\n')
    config = build_config(path)
    assert config.passes["quantize"].entries["linear"].config.weight_frac_width == "auto"  # type: ignore[union-attr]
