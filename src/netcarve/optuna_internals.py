"""The only module that touches Optuna's private API; everything else uses Optuna's public API.

``pyproject.toml`` bounds Optuna to the major version the tests ran on, and ``tests/test_optuna_internals.py``
checks both that no other module reaches into Optuna's internals and that each use here still behaves as relied
on. Each use is here because Optuna offers no public way to do the same:

- **Heartbeat of an ask/tell trial** (:func:`heartbeat`, :func:`heartbeat_enabled`). Optuna starts a trial's
  heartbeat thread only inside ``Study.optimize`` (its ``_optimize._run_trial``); ask/tell, which netcarve
  needs to claim a population of trials and to record trials under its own signal handling, has no public
  way to start one (optuna/optuna#3293, closed without an API). ``optuna.storages._heartbeat`` holds the
  thread (``get_heartbeat_thread``) and the check Optuna itself uses (``is_heartbeat_enabled``); the thread
  needs the trial's storage id, which only ``Trial._trial_id`` holds. The storage's heartbeat settings
  themselves are public: ``RDBStorage(heartbeat_interval=, grace_period=, heartbeat_stale_trial_callback=)``
  (:func:`netcarve.search.storage.open_storage`).
- **Hypervolume of more than two objectives** (:func:`hypervolume`): Optuna ships the WFG algorithm as
  ``optuna._hypervolume.compute_hypervolume`` and exports no public function for it (two objectives are
  computed exactly by :mod:`netcarve.report.pareto` itself).
- **The op codes of a journal record** (:func:`journal_op_codes`): a journal line that is JSON with an unknown
  ``op_code`` makes Optuna's replay fail with a bare ``AssertionError``; netcarve names such a line as damaged
  (:func:`netcarve.search.storage.damaged_line`). The codes are ``optuna.storages.journal._storage.JournalOperation``.

Optuna is imported inside the functions: this module sits at the bottom of the layers (``report/`` uses it,
and ``report/`` imports no torch and stays quick to import).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage


def heartbeat_enabled(storage: BaseStorage) -> bool:
    """Whether ``storage`` records heartbeats (a database storage opened with a heartbeat interval)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


@contextlib.contextmanager
def heartbeat(trial: optuna.Trial, storage: BaseStorage) -> Iterator[None]:
    """While the block runs, ``trial`` records a heartbeat in ``storage`` every heartbeat interval (the first
    at once), exactly as ``Study.optimize`` does; nothing on a storage without heartbeat."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    with get_heartbeat_thread(trial._trial_id, storage):
        yield


def hypervolume(losses: Sequence[Sequence[float]], ref: Sequence[float]) -> float:
    """The volume dominated by ``losses`` (every objective minimised; each point strictly better than ``ref``
    in every coordinate) and bounded by ``ref``: Optuna's WFG algorithm."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(np.asarray(losses, dtype=float), np.asarray(ref, dtype=float)))


def journal_op_codes() -> frozenset[int]:
    """The ``op_code`` values of the records Optuna's journal storage writes and replays."""
    from optuna.storages.journal._storage import JournalOperation

    return frozenset(int(op) for op in JournalOperation)
