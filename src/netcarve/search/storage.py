"""Study storage: a JournalFile in the run dir by default (several processes on one host), or any Optuna
storage URL (``postgresql://…`` for many machines; ``sqlite:///…`` for one process). The effective config
and the run dir are stored in the study's user attributes, so a worker needs only the storage and the name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netcarve.errors import StorageError
from netcarve.paths import output_file
from netcarve.redact import redact_text

if TYPE_CHECKING:
    import optuna
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler
    from optuna.storages import BaseStorage
    from optuna.storages.journal import JournalFileSymlinkLock
    from optuna.trial import FrozenTrial

    from netcarve.outcomes import Direction

log = logging.getLogger(__name__)

CONFIG_ATTR = "netcarve.config"
RUN_DIR_ATTR = "netcarve.run_dir"
TARGET_ATTR = "netcarve.target"
#: how many times the study was resumed (its samplers are seeded differently each time)
RESUMES_ATTR = "netcarve.resumes"
JOURNAL_NAME = "study.journal"
JOURNAL_SCHEME = "journal://"
CONNECT_TIMEOUT_S = 10
#: how often one configuration may lose its worker before it is no longer queued again
MAX_RETRY = 2


def default_storage_url(run_dir: Path) -> str:
    return str((run_dir / JOURNAL_NAME).resolve())


def absolute(url: str) -> str:
    """``url`` with a relative journal file path made absolute (a run's manifest must work from any cwd)."""
    path = journal_path(url)
    if path is None or path.is_absolute():
        return url
    prefix = JOURNAL_SCHEME if url.startswith(JOURNAL_SCHEME) else ""
    return prefix + str(path.resolve())


def repair_journal(path: Path) -> None:
    """Remove an incomplete last record (no line end: a process killed or a copy taken mid-write) from the
    journal at ``path``, under the journal's own lock. Optuna skips such a record when it reads, but the
    next record appended to it would make the journal unreadable."""
    with _journal_locked(path), path.open("rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        data = fh.read()
        keep = data.rfind(b"\n") + 1
        if keep == 0 or not _is_record(data[:keep].split(b"\n", 1)[0]):
            return  # not a journal (or not one record whole): left as it is for the storage to refuse
        fh.truncate(keep)
    log.warning("%s ended in an incomplete record (%d bytes; a process killed or a copy taken while it wrote): "
                "removed it", path, size - keep)  # fmt: skip


def journal_lock(path: Path) -> JournalFileSymlinkLock:
    """The lock every writer of the journal at ``path`` takes: Optuna's default (a symlink next to it), named
    here so that :func:`repair_journal` takes the very lock the storage does."""
    from optuna.storages.journal import JournalFileSymlinkLock

    return JournalFileSymlinkLock(str(path))


@contextlib.contextmanager
def _journal_locked(path: Path) -> Iterator[None]:
    lock = journal_lock(path)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _is_record(line: bytes) -> bool:
    """Whether ``line`` is an Optuna journal record (a JSON object with an ``op_code`` Optuna knows)."""
    import json

    from netcarve.optuna_internals import journal_op_codes

    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and type(record.get("op_code")) is int and record["op_code"] in journal_op_codes()


def damaged_line(path: Path) -> tuple[int, int] | None:
    """(the first line that is not a journal record, the number of whole lines) of the journal at ``path``;
    None when every whole line is a record. An incomplete last line (no line end) is not counted: Optuna
    skips it and :func:`repair_journal` removes it."""
    try:
        whole = path.read_bytes().split(b"\n")[:-1]
    except OSError:
        return None
    return next(((i + 1, len(whole)) for i, line in enumerate(whole) if not _is_record(line)), None)


def unreplayable_line(path: Path) -> tuple[int, int] | None:
    """(the first line Optuna cannot replay, the number of whole lines) of the journal at ``path``, found by
    replaying ever longer prefixes of it in a scratch copy (a record whose fields are missing or wrong is JSON
    with a known ``op_code`` but makes the replay fail); None when the whole journal replays."""
    import tempfile

    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        whole = path.read_bytes().split(b"\n")[:-1]
    except OSError:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / "probe.journal"

        def replays(count: int) -> bool:
            probe.write_bytes(b"".join(line + b"\n" for line in whole[:count]))
            try:
                JournalStorage(JournalFileBackend(str(probe)))
            except Exception:
                return False
            return True

        if replays(len(whole)):
            return None
        good, bad = 0, len(whole)  # a replay that fails at a record fails for every longer prefix
        while bad - good > 1:
            middle = (good + bad) // 2
            good, bad = (middle, bad) if replays(middle) else (good, middle)
        return bad, len(whole)


def damaged_message(path: Path, line: int, lines: int) -> str:
    """What a damaged journal means and what the user can do (one line)."""
    keep = line - 1
    fix = (
        f"to continue from the {keep} record{'s' if keep != 1 else ''} before it (the trials recorded after "
        f"them are lost), keep a copy and cut the journal there: cp {shlex.quote(str(path))} damaged.journal && "
        f"head -n {keep} damaged.journal > {shlex.quote(str(path))}; or restore the journal from a backup"
        if keep
        else "restore it from a backup"
    )
    return (
        f"the study journal {str(path)!r} is damaged: line {line} of {lines} is not a journal record (changed or "
        f"cut by something other than netcarve), so the study cannot be read; {fix}"
    )


def journal_path(url: str) -> Path | None:
    """The file of a journal storage (a plain path or ``journal://path``); None for a database URL."""
    if url.startswith(JOURNAL_SCHEME):
        return Path(url[len(JOURNAL_SCHEME) :])
    return None if "://" in url else Path(url)


def redacted(url: str) -> str:
    """The URL without its password, for messages, logs and run files."""
    return redact_text(url)


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith(("postgresql", "mysql")):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    return {}


#: the prefix of an SQLite URL naming a file (``sqlite:///relative.db``, ``sqlite:////absolute.db``)
SQLITE_FILE = "sqlite:///"


def storage_file(url: str) -> Path | None:
    """The file a storage URL keeps its study in (a journal, an SQLite database); None for a server."""
    path = journal_path(url)
    if path is None and url.startswith(SQLITE_FILE) and len(url) > len(SQLITE_FILE):
        path = Path(url[len(SQLITE_FILE) :].split("?", 1)[0])
    return path


def open_storage(
    url: str, heartbeat_interval: int | None = None, max_retry: int = MAX_RETRY, existing: bool = False
) -> BaseStorage:
    """Open (and for a database, connect to) a storage; StorageError when it cannot be reached.

    ``heartbeat_interval`` (seconds; a database only): every running trial records a heartbeat that often
    (:func:`netcarve.optuna_internals.heartbeat`); a trial silent for twice as long is failed by the next
    worker that asks for a trial, and its configuration queued again (:class:`RetryDeadWorkerTrial`). A journal
    file has no heartbeat: the processes of one host are watched by their parent instead.

    ``existing``: the storage holds a study already (a worker, --resume): a journal or SQLite file that does
    not exist is an error, and is not created (Optuna would leave an empty file behind).
    """
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = journal_path(url)
    file = storage_file(url)
    if existing and file is not None and not file.exists():
        raise StorageError(f"the study storage {str(file)!r} does not exist: give the file a search wrote")
    try:
        if path is not None:
            output_file(path, "the journal storage", StorageError)  # not a directory, nor under a file
            if not path.parent.is_dir():
                raise StorageError(f"cannot open the journal storage {str(path)!r}: its directory does not exist")
            return JournalStorage(JournalFileBackend(str(path), lock_obj=journal_lock(path)))
        if heartbeat_interval is None:
            return RDBStorage(url, engine_kwargs=_engine_kwargs(url))
        with warnings.catch_warnings():  # the heartbeat is experimental in Optuna 5
            warnings.simplefilter("ignore", ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=heartbeat_interval,
                grace_period=2 * heartbeat_interval,
                heartbeat_stale_trial_callback=RetryDeadWorkerTrial(max_retry),
            )
    except StorageError:
        raise
    except Exception as exc:
        damage = (damaged_line(path) or unreplayable_line(path)) if path is not None else None
        if path is not None and damage is not None:
            raise StorageError(damaged_message(path, *damage)) from exc
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise StorageError(
            f"cannot reach the study storage {redacted(url)!r}: {type(exc).__name__}: {redact_text(detail[:200])}"
        ) from exc


def create_study(
    storage: BaseStorage,
    url: str,
    name: str,
    directions: Sequence[Direction],
    sampler: BaseSampler,
    pruner: BasePruner | None = None,
) -> optuna.Study:
    import optuna

    try:
        return optuna.create_study(
            storage=storage, study_name=name, directions=list(directions), sampler=sampler, pruner=pruner
        )
    except optuna.exceptions.DuplicatedStudyError as exc:
        raise duplicated(url, name) from exc


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


def load_study(
    storage: BaseStorage,
    url: str,
    name: str,
    sampler: BaseSampler | None = None,
    pruner: BasePruner | None = None,
) -> optuna.Study:
    import optuna

    try:
        return optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
    except KeyError as exc:
        names = [s.study_name for s in storage.get_all_studies()]
        raise StorageError(
            f"no study named {name!r} in {redacted(url)!r} (studies: {', '.join(names) or 'none'})"
        ) from exc


def stored_config(study: optuna.Study) -> dict[str, Any]:
    data = study.user_attrs.get(CONFIG_ATTR)
    if not isinstance(data, dict):
        raise StorageError(f"study {study.study_name!r} was not created by netcarve search (no stored config)")
    return data


class RetryDeadWorkerTrial:
    """Optuna's heartbeat retry (:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`), keeping of the
    dead trial's user attributes only what identifies its configuration (the brute-force grid id).

    Called by whichever worker failed the stale trial (``fail_stale_trials`` changes its state atomically), so
    the configuration is queued again exactly once; after ``max_retry`` deaths it is not queued again.
    """

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        import optuna
        from optuna.trial import TrialState

        from netcarve.search.record import TrialRecord, grid_id

        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(history) > self.max_retry:
            log.error("trial %d: its worker died %d times on this configuration; not retried", trial.number,
                      len(history))  # fmt: skip
            return
        redo = TrialRecord(grid_id=grid_id(trial), redo_of=trial.number)
        system = {**trial.system_attrs, "failed_trial": history[0], "retry_history": history}
        study.add_trial(
            optuna.create_trial(
                state=TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs=redo.attrs(),
                system_attrs=system,
            )
        )
        log.warning("trial %d: its worker stopped sending heartbeats; its configuration is queued again",
                    trial.number)  # fmt: skip


def with_heartbeat(storage: BaseStorage, url: str, interval_s: int) -> BaseStorage:
    """``storage`` for running trials: a database storage opened anew with a heartbeat every ``interval_s``
    seconds (:func:`open_storage`; ``storage`` was opened before the study's settings were known); any other
    storage as it is."""
    from optuna.storages import RDBStorage

    return open_storage(url, interval_s) if isinstance(storage, RDBStorage) else storage
