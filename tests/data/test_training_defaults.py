"""Every registered dataset carries its recommended training settings in its registry entry."""

from __future__ import annotations

import pytest

from netcarve.config import RunConfig
from netcarve.config.loader import toml_keys
from netcarve.data import DATASETS, training_defaults


@pytest.mark.parametrize("name", ["digits", "wine", "breast-cancer", "synthetic-jsc", "jsc"])
def test_each_bundled_dataset_has_valid_training_defaults(name: str) -> None:
    """The keys are top-level config keys and the values pass the config's own validation."""
    defaults = dict(DATASETS.entry(name).defaults)
    assert {"max_epochs", "batch_size", "learning_rate", "training_optimizer"} <= set(defaults)
    assert set(defaults) <= set(toml_keys(RunConfig))
    written = RunConfig.model_validate(defaults).model_dump(by_alias=True)  # keyed as in TOML
    assert {k: written[k] for k in defaults} == defaults


def test_specs_resolve_to_their_dataset() -> None:
    """``synthetic-jsc:N`` and a local JSC file share jsc's settings; an unknown name has none (its error
    comes when the data is loaded)."""
    assert training_defaults("synthetic-jsc:500") == training_defaults("jsc")
    assert training_defaults("some/file.csv") == training_defaults("jsc")
    assert training_defaults("digits")["training_optimizer"] == "sgd"
    assert training_defaults("no-such-set") == {}
