"""A search run dir's study: found through its manifest.json, its stored config loaded, and a run dir moved or
copied since it was created adopted (the study's paths into the old place now point into the new one).

Nothing here imports torch or builds a model: ``--resume``, ``netcarve worker`` and ``netcarve export`` of a
run dir start here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netcarve.config.loader import option_name, validate_config
from netcarve.config.run import RunConfig
from netcarve.errors import SearchError
from netcarve.redact import MASK
from netcarve.search import storage as st

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

log = logging.getLogger(__name__)

#: study user attribute: the base checkpoint this search trains first (absent when it was given)
BASE_ATTR = "netcarve.base"


@dataclass(frozen=True)
class StudyRef:
    storage: str
    name: str


def read_study_ref(run_dir: Path, storage_url: str | None) -> StudyRef:
    """The study of a run dir, from its manifest.json. A run dir moved or copied since it was created keeps
    its own study.journal (the manifest names the journal where the run dir was created)."""
    path = run_dir / "manifest.json"
    if not path.is_file():
        raise SearchError(f"{str(run_dir)!r} is not a run dir (no manifest.json)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SearchError(f"cannot read {str(path)!r}: {exc}") from exc
    ref = manifest.get("study") if isinstance(manifest, dict) else None
    if not isinstance(ref, dict) or not isinstance(ref.get("storage"), str) or not isinstance(ref.get("name"), str):
        raise SearchError(f"{str(run_dir)!r} is not a search run dir (its manifest names no study)")
    url = storage_url or _own_journal(run_dir, str(ref["storage"]))
    if MASK in url:
        raise SearchError(
            f"the run's storage URL was stored without its password ({url}): pass it again with --storage, "
            "or set NETCARVE_STORAGE"
        )
    return StudyRef(url, str(ref["name"]))


def _own_journal(run_dir: Path, stored: str) -> str:
    """``stored``, or the run dir's own journal when ``stored`` is a run dir's journal elsewhere (moved or
    copied: a copy must not write into the original's study)."""
    journal, own = st.journal_path(stored), run_dir / st.JOURNAL_NAME
    if journal is None or journal.name != st.JOURNAL_NAME or not own.is_file():
        return stored
    if journal.resolve() != own.resolve():
        log.info("%s was moved or copied: using its own %s, not %s", run_dir, st.JOURNAL_NAME, journal)
    return str(own.resolve())


def moved(path: str | None, study: optuna.Study, run_dir: Path | None) -> str | None:
    """``path`` in the run dir the study was created in, taken to the same place in ``run_dir`` (moved or
    copied since)."""
    created = study.user_attrs.get(st.RUN_DIR_ATTR)
    if not path or not created or run_dir is None or not Path(path).is_relative_to(created):
        return path
    return str(run_dir.resolve() / Path(path).relative_to(created))


def load_stored(
    ref: StudyRef, overrides: dict[str, object] | None = None, run_dir: Path | None = None
) -> tuple[RunConfig, BaseStorage, optuna.Study]:
    """The effective config stored in the study (with ``overrides`` of strategy.setup keys); a checkpoint it
    loads from the run dir it was created in is taken from ``run_dir`` (moved or copied since)."""
    storage = st.open_storage(ref.storage, existing=True)
    study = st.load_study(storage, ref.storage, ref.name)
    data = st.stored_config(study)
    setup = data.setdefault("search", {}).setdefault("strategy", {}).setdefault("setup", {})
    setup.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if isinstance(data.get("load_name"), str):
        data["load_name"] = moved(data["load_name"], study, run_dir)
    options = {f"search.strategy.setup.{k}": option_name(k) for k, v in (overrides or {}).items() if v is not None}
    return validate_config(data, f"study {ref.name!r}", options), storage, study


def pending_base(study: optuna.Study, run_dir: Path | None = None) -> Path | None:
    """The base checkpoint the study trains first, when it does not exist yet (interrupted while training)."""
    stored = moved(study.user_attrs.get(BASE_ATTR), study, run_dir)
    return Path(stored) if stored and not Path(stored).is_file() else None


def adopt(study: optuna.Study, run_dir: Path) -> None:
    """After a move or copy of the run dir: the study's paths into the run dir it was created in (the base
    checkpoint, the config's ``load_name``, the run dir workers write to) now point into ``run_dir``."""
    if study.user_attrs.get(st.RUN_DIR_ATTR) in (None, str(run_dir.resolve())):
        return
    if BASE_ATTR in study.user_attrs:
        study.set_user_attr(BASE_ATTR, moved(study.user_attrs[BASE_ATTR], study, run_dir))
    data = st.stored_config(study)
    if isinstance(data.get("load_name"), str):
        study.set_user_attr(st.CONFIG_ATTR, {**data, "load_name": moved(data["load_name"], study, run_dir)})
    study.set_user_attr(st.RUN_DIR_ATTR, str(run_dir.resolve()))
