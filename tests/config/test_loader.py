from __future__ import annotations

import logging
from pathlib import Path

import pytest

from netcarve.config import read_toml
from netcarve.config.passes import QuantizePassConfig
from netcarve.configure import build_config
from netcarve.errors import ConfigError
from tests.conftest import FIXTURES


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_precedence_defaults_toml_flags_set(tmp_path: Path) -> None:
    path = write(tmp_path, "max_epochs = 3\nbatch_size = 32\nlearning_rate = 0.1\n")
    cfg = build_config(path, {"batch_size": 64, "learning_rate": None}, ["learning_rate=0.5"])
    assert cfg.max_epochs == 3  # TOML over default
    assert cfg.batch_size == 64  # flag over TOML
    assert cfg.learning_rate == 0.5  # --set over TOML; None flags are ignored
    assert cfg.seed == 42  # default


def test_an_error_says_whether_set_was_given(tmp_path: Path) -> None:
    """The bad value may be the TOML's or a --set's: with --set, the message says so."""
    path = write(tmp_path, "max_epochs = 3\n")
    with pytest.raises(ConfigError, match=rf"^{path} with --set: invalid value for 'max_epochs'"):
        build_config(path, None, ["max_epochs=0"])
    with pytest.raises(ConfigError, match=rf"^{path}: invalid value for 'max_epochs'"):
        build_config(write(tmp_path, "max_epochs = 0\n"))


def test_a_bad_flag_value_is_blamed_on_its_option(tmp_path: Path) -> None:
    """A value from a command-line flag is the option's, not the TOML's (which may not even set the key); a
    --set of the same key takes its place and is blamed as --set; a TOML error next to it keeps its source."""
    path = write(tmp_path, "[search.strategy.setup]\nn_trials = 5\n")
    setup = {"search": {"strategy": {"setup": {"n_trials": 0}}}}
    with pytest.raises(ConfigError) as err:
        build_config(path, setup)
    assert str(err.value) == "invalid value for --n-trials: Input should be greater than or equal to 1 (got 0)"
    with pytest.raises(ConfigError) as err:
        build_config(path, {"search": {"strategy": {"setup": {"n_jobs": 0}}}, "max_epochs": 0})
    assert str(err.value) == (
        "invalid value for --max-epochs: Input should be greater than or equal to 1 (got 0); "
        "invalid value for --n-jobs: Input should be greater than or equal to 1 (got 0)"
    )
    with pytest.raises(ConfigError, match=rf"^{path} with --set: invalid value for 'search.strategy.setup.n_trials'"):
        build_config(path, setup, ["search.strategy.setup.n_trials=-1"])
    bad_toml = write(tmp_path, "batch_size = 0\n")
    with pytest.raises(ConfigError) as err:
        build_config(bad_toml, setup)
    assert str(err.value).startswith(f"{bad_toml}: invalid value for 'batch_size': Input should be greater")
    assert str(err.value).endswith("; invalid value for --n-trials: Input should be greater than or equal to 1 (got 0)")


def test_na_is_null(tmp_path: Path) -> None:
    data = read_toml(write(tmp_path, 'a = "NA"\n[b]\nc = ["NA", 1]\n'))
    assert data == {"a": None, "b": {"c": [None, 1]}}


def test_unknown_key_names_dotted_key_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "[search.strategy.setup]\nn_trail = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'search\.strategy\.setup\.n_trail'; did you mean 'n_trials'"):
        build_config(path)


def test_wrong_type_names_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid value for 'max_epochs'"):
        build_config(write(tmp_path, 'max_epochs = "ten"\n'))


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        build_config(write(tmp_path, "model = \n"))


def test_mase_example_config_is_accepted_with_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cfg = build_config(FIXTURES / "mase_jsc_by_type.toml", {"dataset": "synthetic-jsc"})
    assert cfg.dataset == "synthetic-jsc" and cfg.model == "jsc-tiny"
    quant = cfg.passes["quantize"]
    assert isinstance(quant, QuantizePassConfig)
    assert quant.default.config.name is None  # "NA"
    assert quant.entries["linear"].config.weight_width == 8
    assert cfg.search is not None and cfg.search.strategy.setup.sum_scaled_metrics is False
    assert list(cfg.search.strategy.metrics) == ["accuracy", "average_bitwidth"]  # config order kept
    assert "transform.style" in caplog.text


def test_no_effect_key_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        build_config(write(tmp_path, "num_workers = 4\n"))
    assert "'num_workers' has no effect" in caplog.text


def test_unknown_pass(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown pass 'quantise'"):
        build_config(write(tmp_path, "[passes.quantise]\nby = 'type'\n"))


def test_set_parses_toml_values_and_nested_keys() -> None:
    cfg = build_config(None, None, ["search.strategy.setup.n_trials=7", "project=demo"])
    assert cfg.search is not None and cfg.search.strategy.setup.n_trials == 7
    assert cfg.project == "demo"


def test_effective_config_round_trips(tmp_path: Path) -> None:
    from netcarve.config import dumps_toml
    from netcarve.config.run import effective_dict

    cfg = build_config(FIXTURES / "mase_jsc_by_type.toml")
    again = build_config(write(tmp_path, dumps_toml(effective_dict(cfg))))
    assert again == cfg


def test_dataset_defaults_rank_between_defaults_and_toml(tmp_path: Path) -> None:
    """defaults < the dataset's training defaults < TOML < flags < --set, key by key ("NA" counts as set),
    except that the optimizer and learning rate come from the dataset together or not at all: a given
    learning rate keeps the global optimizer (adam), not digits' sgd."""
    cfg = build_config(None, {"dataset": "digits"})
    assert (cfg.max_epochs, cfg.batch_size, cfg.learning_rate, cfg.optimizer) == (40, 16, 0.03, "sgd")
    path = write(tmp_path, 'dataset = "digits"\nmax_epochs = 3\nlearning_rate = 0.5\nmax_steps = "NA"\n')
    cfg = build_config(path, {"batch_size": 8}, ["learning_rate=0.25"])
    assert (cfg.max_epochs, cfg.batch_size, cfg.learning_rate, cfg.optimizer) == (3, 8, 0.25, "adam")
    assert cfg.max_steps is None
    assert build_config(None, {"dataset": "wine"}).max_epochs == 100
    plain = build_config(None, {"dataset": "no-such-set"})  # the unknown name is reported when loading data
    assert (plain.max_epochs, plain.batch_size, plain.optimizer) == (10, 256, "adam")
