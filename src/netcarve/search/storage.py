"""Study storage: a JournalFile in the run dir by default (several processes on one host), or any Optuna
storage URL (``postgresql://…`` for many machines; ``sqlite:///…`` for one process). The effective config
and the run dir are stored in the study's user attributes, so a worker needs only the storage and the name.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netcarve.errors import StorageError

if TYPE_CHECKING:
    import optuna
    from optuna.samplers import BaseSampler
    from optuna.storages import BaseStorage

    from netcarve.search.plan import Direction

log = logging.getLogger(__name__)

CONFIG_ATTR = "netcarve.config"
RUN_DIR_ATTR = "netcarve.run_dir"
TARGET_ATTR = "netcarve.target"
JOURNAL_NAME = "study.journal"
JOURNAL_SCHEME = "journal://"
CONNECT_TIMEOUT_S = 10


def default_storage_url(run_dir: Path) -> str:
    return str((run_dir / JOURNAL_NAME).resolve())


def journal_path(url: str) -> Path | None:
    """The file of a journal storage (a plain path or ``journal://path``); None for a database URL."""
    if url.startswith(JOURNAL_SCHEME):
        return Path(url[len(JOURNAL_SCHEME) :])
    return None if "://" in url else Path(url)


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    if journal_path(url) is not None:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith(("postgresql", "mysql")):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    return {}


def open_storage(url: str) -> BaseStorage:
    """Open (and for a database, connect to) a storage; StorageError when it cannot be reached."""
    from optuna.storages import RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = journal_path(url)
    try:
        if path is not None:
            if not path.parent.is_dir():
                raise StorageError(f"cannot open the journal storage {str(path)!r}: its directory does not exist")
            return JournalStorage(JournalFileBackend(str(path)))
        return RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    except StorageError:
        raise
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise StorageError(
            f"cannot reach the study storage {redacted(url)!r}: {type(exc).__name__}: {detail[:200]}"
        ) from None


def create_study(
    storage: BaseStorage, url: str, name: str, directions: Sequence[Direction], sampler: BaseSampler
) -> optuna.Study:
    import optuna

    try:
        return optuna.create_study(storage=storage, study_name=name, directions=list(directions), sampler=sampler)
    except optuna.exceptions.DuplicatedStudyError:
        raise duplicated(url, name) from None


def duplicated(url: str, name: str) -> StorageError:
    return StorageError(
        f"a study named {name!r} already exists in {redacted(url)!r}: continue it with --resume RUN_DIR, "
        "join it with 'netcarve worker', or choose another --study-name"
    )


def study_exists(storage: BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


def load_study(storage: BaseStorage, url: str, name: str, sampler: BaseSampler | None = None) -> optuna.Study:
    import optuna

    try:
        return optuna.load_study(storage=storage, study_name=name, sampler=sampler)
    except KeyError:
        names = [s.study_name for s in storage.get_all_studies()]
        raise StorageError(
            f"no study named {name!r} in {redacted(url)!r} (studies: {', '.join(names) or 'none'})"
        ) from None


def stored_config(study: optuna.Study) -> dict[str, Any]:
    data = study.user_attrs.get(CONFIG_ATTR)
    if not isinstance(data, dict):
        raise StorageError(f"study {study.study_name!r} was not created by netcarve search (no stored config)")
    return data
