"""Brute force: every configuration once, in canonical order, also across processes and machines.

The configurations are enqueued in the study (WAITING trials with user attribute ``grid_id`` = their index in
canonical order) before any worker starts. A worker claims one by switching it WAITING → RUNNING, which
the storage does atomically (the journal rejects a second claim when it replays the log; a database
checks the state in the same transaction), so each configuration is handed out exactly once; when no
WAITING trial is left the worker stops. On resume, configurations whose trial died (stale) or that were
never enqueued are enqueued again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from netcarve.search import record
from netcarve.search.spaces import SearchSpace

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

GRID_ATTR = record.GRID_ID
STALE_ATTR = record.STALE


def is_stale(trial: FrozenTrial) -> bool:
    """A FAIL trial that did not fail on its own: its process died or was interrupted (marked ``stale``), or
    Optuna's heartbeat check failed it (no ``error`` recorded). Its configuration is run again."""
    from optuna.trial import TrialState

    return trial.state == TrialState.FAIL and record.marked_stale(trial)


def covered_grid_ids(study: optuna.Study) -> set[int]:
    """Grid ids held by a trial that is waiting, running or finished (stale failures excluded)."""
    covered: set[int] = set()
    for trial in study.get_trials(deepcopy=False):
        grid_id = record.grid_id(trial)
        if grid_id is not None and not is_stale(trial):
            covered.add(grid_id)
    return covered


def finished_grid_ids(study: optuna.Study) -> set[int]:
    """Grid ids whose configuration was run to an end: complete, pruned or failed on its own."""
    from optuna.trial import TrialState

    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    ids = ((record.grid_id(t), t) for t in study.get_trials(deepcopy=False, states=ended))
    return {grid_id for grid_id, t in ids if grid_id is not None and not is_stale(t)}


def enqueue_missing(study: optuna.Study, space: SearchSpace, target: int) -> int:
    """Enqueue every configuration in ``range(target)`` no trial holds; returns how many were enqueued."""
    covered = covered_grid_ids(study)
    missing = [i for i in range(target) if i not in covered]
    for index in missing:
        study.enqueue_trial(space.point(index), user_attrs=record.TrialRecord(grid_id=index).attrs())
    if missing:
        log.info("brute force: %d of %d configurations queued", len(missing), target)
    return len(missing)


def claim_waiting(study: optuna.Study, storage: BaseStorage) -> optuna.Trial | None:
    """Claim the first WAITING trial (atomically through the storage); None when none is left."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, trial_id)
        except UpdateFinishedTrialError:
            continue
    return None
