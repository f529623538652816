"""Resume after an interruption (also kill -9): trials left RUNNING by a dead process are marked FAIL with
``stale = true`` and redone — their exact configuration is enqueued again (brute force re-enqueues the
grid ids no live trial holds). A RUNNING trial whose process is still alive on this host is left alone.
"""

from __future__ import annotations

import logging
import os
import platform
from typing import TYPE_CHECKING

from netcarve.search.brute_force import GRID_ATTR, STALE_ATTR

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

log = logging.getLogger(__name__)


def _alive(worker: object) -> bool:
    """Is the process that owns a trial (``host:pid``) still running on this host?"""
    if not isinstance(worker, str) or ":" not in worker:
        return False
    host, _, pid_text = worker.rpartition(":")
    if host != platform.node() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_stale(study: optuna.Study, storage: BaseStorage, enumerates: bool) -> int:
    """Mark the RUNNING trials of dead processes FAIL (stale) and enqueue their configurations again."""
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    recovered = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _alive(trial.user_attrs.get("worker")):
            log.warning("trial %d is still running in %s; left alone", trial.number, trial.user_attrs["worker"])
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, STALE_ATTR, True)
        storage.set_trial_user_attr(trial_id, "error", "stale: its process ended before the trial finished")
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        if not enumerates and GRID_ATTR not in trial.user_attrs:
            study.enqueue_trial(dict(trial.params), user_attrs={"redo_of": trial.number})
        recovered += 1
    if recovered:
        log.info("resume: %d interrupted trial(s) marked stale and queued again", recovered)
    return recovered
