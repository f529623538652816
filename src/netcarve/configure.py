"""A run's config from its sources: defaults < the dataset's training defaults < TOML < flags < ``--set``.

This sits above ``config/`` and ``data/``: it merges what the config schema reads (:mod:`netcarve.config.loader`)
with the training defaults each dataset registers (:func:`netcarve.data.training_defaults`), so the config
package itself never imports the datasets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from netcarve.config.loader import (
    dotted_keys,
    merge,
    option_name,
    parse_assignment,
    read_toml,
    set_dotted,
    validate_config,
)
from netcarve.config.run import RunConfig


def build_config(
    toml_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    assignments: Iterable[str] = (),
) -> RunConfig:
    """Defaults < the dataset's training defaults < TOML < CLI flags (``overrides``, None values ignored) <
    ``--set`` assignments.

    The dataset's defaults (:func:`netcarve.data.training_defaults`, e.g. digits: SGD, batch 16) fill only
    the keys that neither the TOML, a flag nor ``--set`` gave (a key given as "NA" counts as given).
    """
    data: dict[str, Any] = read_toml(toml_path) if toml_path is not None else {}
    assignments = list(assignments)
    source = str(toml_path) if toml_path is not None else "config"
    if assignments:  # an error may be in a --set value: say so
        source = f"{toml_path} with --set" if toml_path is not None else "--set"
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    data = merge(data, flags)
    options = {dotted: option_name(dotted) for dotted in dotted_keys(flags)}
    for text in assignments:
        path, value = parse_assignment(text)
        set_dotted(data, path, value)
        options.pop(".".join(path), None)  # the value is --set's
    return validate_config(with_dataset_defaults(data), source, options)


#: keys whose dataset defaults only make sense together: setting one of them drops the others' defaults
#: (an Adam learning rate given with the dataset's SGD default would train poorly)
LINKED_DEFAULTS = frozenset({"training_optimizer", "learning_rate"})


def with_dataset_defaults(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the training defaults of its ``dataset`` added for every key it does not set; the
    optimizer and learning rate are taken from the dataset together or not at all."""
    dataset = data.get("dataset")
    if not isinstance(dataset, str):
        return dict(data)
    from netcarve.data import training_defaults  # torch: only when a dataset is named

    defaults = dict(training_defaults(dataset))
    if LINKED_DEFAULTS & data.keys():
        defaults = {k: v for k, v in defaults.items() if k not in LINKED_DEFAULTS}
    return {**defaults, **data}
