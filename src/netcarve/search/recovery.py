"""Trials whose process died: found, marked FAIL with ``stale = true`` and their configuration queued again.

Who finds them:
- while a study runs, every worker before it asks for a trial (:func:`reap_dead`), and the parent of
  ``--n-jobs`` workers as soon as one of them exits abnormally: a RUNNING trial owned (user attribute
  ``worker`` = ``host:pid``) by a process of this host that no longer exists is dead;
- on a database storage, Optuna's heartbeat (``setup.heartbeat_interval``): a trial whose heartbeat is older
  than twice the interval is failed by ``optuna.storages.fail_stale_trials`` and queued again by
  :class:`netcarve.search.storage.RetryDeadWorkerTrial`; this covers workers on other machines;
- on ``--resume``, every RUNNING trial whose process is not alive on this host (:func:`recover_stale`).

Whoever switches the trial RUNNING → FAIL (the storage does it atomically, a second attempt raises) queues
its configuration again, so it is queued exactly once. A configuration that lost its worker
:data:`~netcarve.search.storage.MAX_RETRY` + 1 times is not queued again: the search ends incomplete and says
how to resume.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import warnings
from typing import TYPE_CHECKING, Literal

from netcarve.optuna_internals import heartbeat_enabled
from netcarve.search import record
from netcarve.search.record import TrialRecord
from netcarve.search.storage import MAX_RETRY

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

#: a RUNNING trial without an owner yet (claimed, owner not recorded) is given this long to record one
CLAIM_GRACE_S = 60.0
Owner = Literal["alive", "dead", "remote"]


def owner_state(trial: FrozenTrial) -> Owner:
    """Is the process that runs ``trial`` alive (this host), dead (this host, or never recorded), or remote?"""
    worker = record.worker(trial)
    if worker is None or ":" not in worker:
        start = trial.datetime_start
        recent = start is not None and (dt.datetime.now() - start).total_seconds() < CLAIM_GRACE_S
        return "alive" if recent else "dead"
    host, _, pid_text = worker.rpartition(":")
    if host != platform.node():
        return "remote"
    if not pid_text.isdigit():
        return "dead"
    pid = int(pid_text)
    if pid == os.getpid():
        return "alive"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        return "alive"
    return "dead" if _is_zombie(pid) else "alive"


def _is_zombie(pid: int) -> bool:
    """A process that has ended but whose parent has not reaped it yet (Linux ``/proc``): it runs nothing."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def fail_stale_heartbeats(study: optuna.Study) -> None:
    """Optuna's own check: fail trials whose heartbeat stopped, and queue them again (its callback)."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import fail_stale_trials

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        fail_stale_trials(study)


def recover_trial(study: optuna.Study, storage: BaseStorage, trial: FrozenTrial, reason: str) -> bool:
    """Mark a RUNNING trial FAIL (stale, with ``reason``) and queue its configuration again.

    False when another process recovered or finished it first (then nothing is queued here).
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    try:
        for key, value in TrialRecord(stale=True, error=f"stale: {reason}").attrs().items():  # stale first
            storage.set_trial_user_attr(trial_id, key, value)
        if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
            return False
    except UpdateFinishedTrialError:
        return False
    retries = TrialRecord.of(trial).retries
    params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    if retries >= MAX_RETRY:
        log.error("trial %d: %s; this configuration lost its worker %d times and is not queued again",
                  trial.number, reason, retries + 1)  # fmt: skip
    elif params:
        redo = TrialRecord(grid_id=record.grid_id(trial), redo_of=trial.number, retries=retries + 1)
        study.enqueue_trial(params, user_attrs=redo.attrs())
        log.warning("trial %d: %s; its configuration is queued again", trial.number, reason)
    return True


def _dead_reason(trial: FrozenTrial) -> str:
    worker = record.worker(trial)
    return f"worker died ({worker} ended before the trial finished)" if worker else "worker died before starting it"


def reap_dead(study: optuna.Study, storage: BaseStorage) -> int:
    """Recover the RUNNING trials whose owner died (this host; other hosts through the heartbeat)."""
    from optuna.trial import TrialState

    recovered = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if owner_state(trial) == "dead":
            recovered += recover_trial(study, storage, trial, _dead_reason(trial))
    if heartbeat_enabled(storage):
        fail_stale_heartbeats(study)
    return recovered


def others_running(study: optuna.Study, storage: BaseStorage) -> bool:
    """Is a RUNNING trial held by a process that may still finish it (or, remote, be failed by the heartbeat)?

    A remote trial on a storage without heartbeat is not waited for: nothing would ever fail it.
    """
    from optuna.trial import TrialState

    beating = heartbeat_enabled(storage)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        state = owner_state(trial)
        if state == "alive" or (state == "remote" and beating):
            return True
    return False


def recover_stale(study: optuna.Study, storage: BaseStorage) -> int:
    """On resume: every RUNNING trial whose process is not alive on this host is recovered."""
    from optuna.trial import TrialState

    recovered = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if owner_state(trial) == "alive" and record.worker(trial):
            log.warning("trial %d is still running in %s; left alone", trial.number, record.worker(trial))
            continue
        recovered += recover_trial(study, storage, trial, "its process ended before the trial finished")
    if recovered:
        log.info("resume: %d interrupted trial(s) marked stale and queued again", recovered)
    return recovered
