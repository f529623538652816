"""One declaration of the training keys: the top level, ``basic_train`` and the loop's TrainConfig share it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from netcarve.config.loader import toml_keys
from netcarve.config.run import RunConfig, effective_dict
from netcarve.config.search import BasicTrain
from netcarve.config.training import OPTIMIZERS, SCHEDULES, TrainingSettings, training_settings
from netcarve.configure import build_config
from netcarve.errors import ConfigError
from netcarve.train.loop import TrainConfig

BASIC = "search.strategy.sw_runner.basic_train"


def basic_of(config: RunConfig) -> BasicTrain:
    assert config.search is not None
    basic = config.search.strategy.sw_runner.basic_train
    assert basic is not None
    return basic


def test_one_model_everywhere() -> None:
    """The loop trains with the model itself; both tables extend it; every field has a docstring."""
    assert TrainConfig is TrainingSettings
    assert issubclass(RunConfig, TrainingSettings) and issubclass(BasicTrain, TrainingSettings)
    for name, field in TrainingSettings.model_fields.items():
        assert field.description, name
        assert RunConfig.model_fields[name].description == field.description
        assert BasicTrain.model_fields[name].annotation == field.annotation


def test_toml_surface_is_mases() -> None:
    """Top level: MASE's flat keys with ``training_optimizer``; basic_train: ``optimizer``."""
    top = set(toml_keys(RunConfig))
    assert {"max_epochs", "max_steps", "batch_size", "learning_rate", "weight_decay", "training_optimizer"} <= top
    assert {"lr_scheduler", "num_warmup_steps", "seed", "log_every_n_steps", "task", "load_type"} <= top
    assert "optimizer" not in top
    basic = set(toml_keys(BasicTrain))
    assert {"optimizer", "max_epochs", "num_samples", "data_loader", "seed"} <= basic
    assert "training_optimizer" not in basic


def test_top_level_and_basic_train_map_to_the_same_settings() -> None:
    """The same values written at the top level and in basic_train give equal TrainingSettings."""
    values = {"max_epochs": 3, "batch_size": 32, "learning_rate": 0.01, "weight_decay": 1e-4, "seed": 5}
    top = build_config(None, None, [f"{k}={v}" for k, v in values.items()] + ["training_optimizer='sgd'"])
    sets = [f"{BASIC}.{k}={v}" for k, v in values.items()] + [f"{BASIC}.optimizer='sgd'"]
    nested = basic_of(build_config(None, None, sets))
    assert training_settings(top) == training_settings(nested) == TrainingSettings(optimizer="sgd", **values)


def test_basic_train_defaults_and_inherited_seed(tmp_path: Path) -> None:
    """basic_train trains one epoch unless set; an unset or "NA" seed is the top-level one, written into
    the table so that the effective config (what a resumed search reads) keeps it."""
    basic = basic_of(build_config(None, None, ["seed=7", f"{BASIC}.batch_size=8"]))
    assert (basic.max_epochs, basic.seed, basic.batch_size) == (1, 7, 8)
    assert basic_of(build_config(None, None, ["seed=7", f"{BASIC}.seed='NA'"])).seed == 7
    assert basic_of(build_config(None, None, ["seed=7", f"{BASIC}.seed=3"])).seed == 3
    assert basic_of(build_config(None, None, [f"{BASIC}.batch_size=8"])).seed == 42  # both defaults
    config = build_config(None, None, ["seed=7", f"{BASIC}.batch_size=8"])
    again = RunConfig.model_validate({**effective_dict(config), "seed": 9})
    assert basic_of(again).seed == 7  # kept from the effective config, not the new top-level seed


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        (
            "training_optimizer='adm'",
            "--set: invalid value for 'training_optimizer': unknown optimizer 'adm'; did you mean 'adam', "
            "'adamw'? (known: adam, adamw, sgd) (got 'adm')",
        ),
        (
            "lr_scheduler='cosin'",
            "--set: invalid value for 'lr_scheduler': unknown lr scheduler 'cosin'; did you mean 'cosine'? "
            "(known: constant, linear, cosine) (got 'cosin')",
        ),
        (
            f"{BASIC}.optimizer='sgdd'",
            f"--set: invalid value for '{BASIC}.optimizer': unknown optimizer 'sgdd'; did you mean 'sgd'? "
            "(known: adam, adamw, sgd) (got 'sgdd')",
        ),
        ("optimizer='sgd'", "--set: unknown key 'optimizer'; did you mean 'training_optimizer'?"),
        ("training_optimiser='sgd'", "--set: unknown key 'training_optimiser'; did you mean 'training_optimizer'?"),
        (
            "task='regression'",
            "--set: invalid value for 'task': netcarve only does classification: use 'cls' or 'classification' "
            "(got 'regression')",
        ),
        ("load_type='ckpt'", "--set: invalid value for 'load_type': Input should be 'pt', 'pl' or 'mz' (got 'ckpt')"),
    ],
)
def test_names_are_checked_with_one_line(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(None, None, [assignment])
    assert str(info.value) == message


def test_every_registered_name_is_accepted() -> None:
    """The registries are the only lists of names: each one validates, in both tables."""
    for name in OPTIMIZERS.names():
        config = build_config(None, None, [f"training_optimizer='{name}'", f"{BASIC}.optimizer='{name}'"])
        assert config.optimizer == basic_of(config).optimizer == name
    for name in SCHEDULES.names():
        assert basic_of(build_config(None, None, [f"{BASIC}.lr_scheduler='{name}'"])).lr_scheduler == name


def test_every_declared_name_is_implemented_by_train() -> None:
    """Config validates against the declared registries (no torch); train.optim binds every entry of the same
    registry objects to a function (an optimizer factory, a schedule of progress in [0, 1] → multiplier)."""
    from netcarve.train import optim

    assert optim.OPTIMIZERS is OPTIMIZERS and optim.SCHEDULES is SCHEDULES
    assert all(callable(OPTIMIZERS.get(name)) for name in OPTIMIZERS)
    assert {name: SCHEDULES.get(name)(0.0) for name in SCHEDULES} == {"constant": 1.0, "linear": 1.0, "cosine": 1.0}
    assert {name: SCHEDULES.get(name)(1.0) for name in SCHEDULES} == {"constant": 1.0, "linear": 0.0, "cosine": 0.0}


def test_task_accepts_both_classification_spellings() -> None:
    assert build_config(None, None, ["task='classification'"]).task == "classification"
    assert build_config(None, None, ["task='cls'"]).task == "cls"


def test_log_every_n_steps_in_basic_train_is_taken(caplog: pytest.LogCaptureFixture) -> None:
    """It sets the search's training progress interval (tests/search/test_population.py): no warning."""
    with caplog.at_level(logging.WARNING):
        assert basic_of(build_config(None, None, [f"{BASIC}.log_every_n_steps=5"])).log_every_n_steps == 5
    assert "log_every_n_steps" not in caplog.text


def test_effective_config_writes_toml_keys(tmp_path: Path) -> None:
    """config.toml holds MASE's key names (``training_optimizer``), model and dataset first."""
    config = build_config(None, {"model": "jsc-toy", "dataset": "digits"})
    data = effective_dict(config)
    assert list(data)[:2] == ["model", "dataset"]
    assert data["training_optimizer"] == "sgd" and "optimizer" not in data  # digits' default
    assert RunConfig.model_validate(data) == config
