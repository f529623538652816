"""A search's model file and dataset file: recorded in its study (resolved path and sha256) when it starts,
checked when it is resumed or a trial is rebuilt, and pointed at anew after a move (``--model`` /
``--dataset``, checked against the recorded sha256). See :mod:`netcarve.provenance`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netcarve.config.run import RunConfig
from netcarve.errors import ConfigError
from netcarve.provenance import (
    FileRef,
    check_unchanged,
    dataset_file,
    file_refs,
    model_sha256,
    relocated_dataset,
    relocated_model,
    sha256_of,
)
from netcarve.search import storage as st

if TYPE_CHECKING:
    import optuna

#: study user attribute: {"model": FileRef dict, "dataset": FileRef dict} of the files the search was made with
FILES_ATTR = "netcarve.files"


def record_files(study: optuna.Study, files: dict[str, dict[str, str]]) -> None:
    study.set_user_attr(FILES_ATTR, files)


def stored_files(study: optuna.Study) -> dict[str, FileRef]:
    """The recorded files (none for a study created before they were recorded)."""
    data = study.user_attrs.get(FILES_ATTR)
    refs = {key: FileRef.from_dict(data.get(key)) for key in ("model", "dataset")} if isinstance(data, dict) else {}
    return {key: ref for key, ref in refs.items() if ref is not None}


#: config key → the stored spec with its file moved to where the option points (checked by sha256)
_RELOCATED: dict[str, Callable[[str, str | None, str], str]] = {"model": relocated_model, "dataset": relocated_dataset}


def vouched_model(study: optuna.Study, config: RunConfig) -> bool:
    """Whether ``config.model`` is a model file with the sha256 the study records (checked, or relocated with
    ``--model``): the run's base checkpoint is then loaded for it without comparing paths, which a base.pt
    from before the sha256 was recorded holds as typed (``m/odd.py:mlp``, relative to where the run began)."""
    ref = stored_files(study).get("model")
    return ref is not None and config.model is not None and model_sha256(config.model) == ref.sha256


def _sha(files: dict[str, FileRef], key: str) -> str | None:
    return files[key].sha256 if key in files else None


def same_dataset_file(study: optuna.Study, spec: str) -> bool:
    """Whether ``spec`` names a file with the sha256 of the dataset file the study recorded."""
    ref = stored_files(study).get("dataset")
    path = dataset_file(spec) or spec
    return ref is not None and Path(path).is_file() and sha256_of(path) == ref.sha256


def relocate(
    study: optuna.Study, config: RunConfig, model: str | None, dataset: str | None, *, write: bool
) -> RunConfig:
    """``config`` (the study's) with its model file and dataset file where ``model`` / ``dataset`` point
    (moved since: each checked against the recorded sha256, another file is a ConfigError naming the option);
    a recorded file not pointed at must still be where it was, unchanged. ``write``: the study's config and
    recorded files are updated too (``--resume``: its worker processes read the config from the study)."""
    files = stored_files(study)
    update: dict[str, Any] = {}
    for key, given in (("model", model), ("dataset", dataset)):
        if given is not None:
            stored = getattr(config, key)
            if not stored:
                raise ConfigError(f"--{key} points at the run's {key} file, but the run records no {key}")
            update[key] = _RELOCATED[key](stored, _sha(files, key), given)
        elif key in files:
            check_unchanged(files[key], key, f"--{key}")
    if not update:
        return config
    config = config.model_copy(update=update)
    if write:
        study.set_user_attr(st.CONFIG_ATTR, {**st.stored_config(study), **update})
        moved = file_refs(update.get("model"), update.get("dataset"))
        record_files(study, {**{k: v.to_dict() for k, v in files.items()}, **moved})
    return config
