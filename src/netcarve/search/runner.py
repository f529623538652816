"""The worker loop (ask → run → tell until the study has its trials) and ``n_jobs`` worker processes.

When is a study done? When ``target`` (n_trials) trials are COMPLETE or PRUNED — reused results count, failed
trials do not (they are replaced by new ones, up to ``target`` failures, then the study stops with a
warning); trials left RUNNING by a killed process are redone on resume. A brute-force study is done when
every enqueued configuration has been claimed and finished. ``setup.timeout`` stops asking for new trials.
With several processes on one host, "count, then ask" is serialised by a lock file in the run dir, so the
study never overshoots its target; remote workers (``netcarve worker`` on other machines) may overshoot by
at most one trial each.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netcarve.search.brute_force import STALE_ATTR, claim_waiting
from netcarve.search.session import Session

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

POLL_S = 0.25
LOCK_NAME = ".ask.lock"


@dataclass(frozen=True)
class Counts:
    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int

    @property
    def done(self) -> int:
        return self.complete + self.pruned


def count_trials(study: optuna.Study) -> Counts:
    from optuna.trial import TrialState

    n = dict.fromkeys(TrialState, 0)
    stale = 0
    for trial in study.get_trials(deepcopy=False):
        n[trial.state] += 1
        stale += trial.state == TrialState.FAIL and bool(trial.user_attrs.get(STALE_ATTR))
    return Counts(n[TrialState.COMPLETE], n[TrialState.PRUNED], n[TrialState.FAIL] - stale, n[TrialState.RUNNING],
                  n[TrialState.WAITING])  # fmt: skip


@contextlib.contextmanager
def ask_lock(run_dir: Path | None) -> Iterator[None]:
    """An exclusive lock shared by the processes of one host (no-op without a local run dir)."""
    if run_dir is None or not run_dir.is_dir():
        yield
        return
    with (run_dir / LOCK_NAME).open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def _ask(session: Session, deadline: float | None) -> optuna.Trial | None:
    target = session.target
    while not _expired(deadline):
        with ask_lock(session.run_dir):
            c = count_trials(session.study)
            if target is not None and c.done >= target:
                return None
            if target is not None and c.failed >= max(target, 1):
                log.warning("stopping: %d trials failed (see their 'error' in trials.csv)", c.failed)
                return None
            if target is None or c.done + c.running < target:
                return session.study.ask()
        time.sleep(POLL_S)  # the last trials are running elsewhere; one may still fail
    return None


def next_trial(session: Session, deadline: float | None) -> optuna.Trial | None:
    if _expired(deadline):
        return None
    if session.prepared.plan.enumerates:
        return claim_waiting(session.study, session.storage)
    return _ask(session, deadline)


def work(session: Session, deadline: float | None, on_trial: Callable[[], None] | None = None) -> int:
    """Run trials in this process until the study is done; returns how many this process ran."""
    runner = session.runner()
    ran = 0
    while (trial := next_trial(session, deadline)) is not None:
        runner.run(trial)
        ran += 1
        if on_trial is not None:
            on_trial()
    return ran


def spawn_workers(session: Session, n: int, deadline: float | None) -> list[subprocess.Popen[bytes]]:
    """``n`` processes of ``netcarve worker`` on this study; each logs to ``worker-<i>.log`` in the run dir."""
    assert session.run_dir is not None
    threads = max(1, (os.cpu_count() or 1) // n)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    procs = []
    for i in range(n):
        cmd = [sys.executable, "-m", "netcarve.cli.app", "worker", "--storage", session.url,
               "--study-name", session.study.study_name, "--worker-index", str(i)]  # fmt: skip
        if deadline is not None:
            cmd += ["--timeout", f"{max(deadline - time.time(), 1.0):.1f}"]
        with (session.run_dir / f"worker-{i}.log").open("ab") as fh:
            procs.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env))
    log.info("started %d worker processes (%d threads each)", n, threads)
    return procs


def wait_workers(session: Session, procs: list[subprocess.Popen[bytes]], on_poll: Callable[[], None]) -> None:
    try:
        while any(p.poll() is None for p in procs):
            on_poll()
            time.sleep(POLL_S * 2)
    except BaseException:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        raise
    on_poll()
    for i, p in enumerate(procs):
        if p.returncode != 0:
            where = session.run_dir / f"worker-{i}.log" if session.run_dir else "its log"
            log.error("worker %d exited with code %d (see %s)", i, p.returncode, where)


def run_study(session: Session, n_jobs: int, timeout: float | None, on_progress: Callable[[], None]) -> None:
    """Run the study to its end: in this process (n_jobs = 1) or in ``n_jobs`` worker processes."""
    deadline = time.time() + timeout if timeout is not None else None
    on_progress()
    if n_jobs == 1 or session.run_dir is None:
        work(session, deadline, on_progress)
    else:
        wait_workers(session, spawn_workers(session, n_jobs, deadline), on_progress)
