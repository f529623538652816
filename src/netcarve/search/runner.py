"""The worker loop (ask → run → tell until the study has its trials) and ``n_jobs`` supervised worker processes.

When is a study done? When ``target`` (n_trials) trials are COMPLETE or PRUNED — reused results count, failed
trials do not (they are replaced by new ones, up to ``target`` failures, then the study stops with a
warning); trials left RUNNING by a killed process are redone on resume. A brute-force study is done when
every enqueued configuration has been claimed and finished. ``setup.timeout`` stops asking for new trials.
With several processes on one host, "count, then ask" is serialised by a lock file in the run dir, so the
study never overshoots its target; remote workers (``netcarve worker`` on other machines) may overshoot by
at most one trial each.

Nothing is lost when a worker dies (see :mod:`netcarve.search.recovery`): its trial is failed as stale and its
configuration queued again, for the surviving workers or a replacement that the parent starts. Workers end
with their parent (SIGTERM, also when the parent is killed with SIGKILL). At the end, :func:`completion`
tells whether every configuration (brute force) or every trial (n_trials) was run.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netcarve.search.brute_force import claim_waiting, finished_grid_ids, is_stale
from netcarve.search.objective import worker_id
from netcarve.search.population import population_size
from netcarve.search.record import TrialRecord, is_reused, write
from netcarve.search.recovery import others_running, reap_dead
from netcarve.search.session import Session

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

POLL_S = 0.25
LOCK_NAME = ".ask.lock"
#: environment of a spawned worker: the storage URL (never on a command line) and the parent's pid
STORAGE_ENV = "NETCARVE_STORAGE"
PARENT_ENV = "NETCARVE_PARENT_PID"
#: how long workers get to record their interrupted trial after SIGTERM before they are killed
STOP_GRACE_S = 15.0


@dataclass(frozen=True)
class Counts:
    """Trials by state, as trials.csv lists them; ``stale``: FAIL rows of interrupted or dead trials (redone)."""

    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int
    stale: int = 0
    reused: int = 0

    @property
    def done(self) -> int:
        return self.complete + self.pruned

    @property
    def total(self) -> int:
        return self.complete + self.pruned + self.failed + self.stale + self.running + self.waiting


def count_trials(study: optuna.Study) -> Counts:
    from optuna.trial import TrialState

    n = dict.fromkeys(TrialState, 0)
    stale = reused = 0
    for trial in study.get_trials(deepcopy=False):
        n[trial.state] += 1
        stale += is_stale(trial)
        reused += trial.state == TrialState.COMPLETE and is_reused(trial)
    return Counts(n[TrialState.COMPLETE], n[TrialState.PRUNED], n[TrialState.FAIL] - stale, n[TrialState.RUNNING],
                  n[TrialState.WAITING], stale, reused)  # fmt: skip


@dataclass(frozen=True)
class Completion:
    """Is the study complete? ``missing``: configurations (brute force) or trials not run to an end."""

    target: int | None
    done: int
    missing: int
    running: int
    timed_out: bool

    @property
    def complete(self) -> bool:
        return self.missing == 0 and self.running == 0


def completion(session: Session, timed_out: bool = False) -> Completion:
    c = count_trials(session.study)
    target = session.target
    if target is None:
        missing = 0
    elif session.prepared.plan.enumerates:
        missing = target - len(finished_grid_ids(session.study) & set(range(target)))
    else:
        missing = max(0, target - c.done)
    return Completion(target, c.done, missing, c.running, timed_out)


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


def remove_lock(run_dir: Path) -> None:
    """The lock file is only needed while processes run; a finished run dir does not keep it."""
    (run_dir / LOCK_NAME).unlink(missing_ok=True)


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def _ask(session: Session) -> tuple[optuna.Trial | None, bool]:
    """(a new trial, or None with whether to wait for trials running elsewhere)."""
    target = session.target
    with ask_lock(session.run_dir):
        c = count_trials(session.study)
        if target is not None and c.done >= target:
            return None, False
        if target is not None and c.failed >= max(target, 1):
            log.warning("stopping: %d trials failed (see their 'error' in trials.csv)", c.failed)
            return None, False
        if target is None or c.done + c.running < target:
            with warnings.catch_warnings():  # ask/tell runs the heartbeat itself (see work)
                warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used")
                return session.study.ask(), False
    return None, True  # the last trials are running elsewhere; one may still fail


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (then act as usual): a trial is never claimed
    without its owner recorded, which is what lets a dead owner's trial be recovered."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    signums = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum in pending[:1]:
            original = previous[signal.Signals(signum)]
            if callable(original):
                original(signum, None)
            elif original == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


def _claim(session: Session, into: list[optuna.Trial]) -> tuple[optuna.Trial | None, bool]:
    """(a trial this process now owns — ``worker`` recorded, appended to ``into`` before a deferred interrupt
    is raised, so the caller can record it interrupted —, or None with whether to wait and ask again)."""
    with interrupts_deferred():
        if session.prepared.plan.enumerates:
            trial = claim_waiting(session.study, session.storage)
            wait = trial is None
        else:
            trial, wait = _ask(session)
        if trial is not None:
            write(trial, TrialRecord(worker=worker_id()))
            into.append(trial)
    return trial, wait


def next_trial(session: Session, deadline: float | None, into: list[optuna.Trial]) -> optuna.Trial | None:
    """The next trial for this process (also appended to ``into``), or None when the study is done (or
    nothing is left but trials whose processes cannot be waited for). Dead processes' trials are recovered
    first."""
    quiet = False  # nothing waiting and nothing running elsewhere at the last look
    while not _expired(deadline):
        reap_dead(session.study, session.storage)
        trial, wait = _claim(session, into)
        if trial is not None or not wait:
            return trial
        if others_running(session.study, session.storage):
            quiet = False
        elif quiet:
            return None
        else:
            # look twice, POLL_S apart: another process may have just failed a dead worker's trial and not
            # yet queued its configuration again (recover_trial), which would otherwise be left unrun
            quiet = True
        time.sleep(POLL_S)
    return None


def next_population(
    session: Session,
    deadline: float | None,
    size: int,
    stack: contextlib.ExitStack,
    trials: list[optuna.Trial],
) -> None:
    """Claim up to ``size`` trials for this process into ``trials`` (at least one unless the study is done),
    each appended the moment it is claimed, so an interrupt meanwhile leaves it there to be recorded: the
    first as :func:`next_trial` claims it (waiting if need be), the others only while trials are free right
    away. Each trial's heartbeat (a database storage) starts when it is claimed, in ``stack``."""
    from netcarve.optuna_internals import heartbeat

    while len(trials) < size and not _expired(deadline):
        trial = next_trial(session, deadline, trials) if not trials else _claim(session, trials)[0]
        if trial is None:
            break
        stack.enter_context(heartbeat(trial, session.storage))


def work(
    session: Session,
    deadline: float | None,
    on_trial: Callable[[], None] | None = None,
    on_training: Callable[[int, int], None] | None = None,
) -> int:
    """Run trials in this process until the study is done; returns how many this process ran.

    Retrained candidates are claimed and trained as populations of :func:`population_size` trials.
    On a storage with heartbeat, each trial records its heartbeat in a thread while it runs.
    ``on_trial()`` after each population; ``on_training(done, total)`` as a candidate or population trains.
    """
    runner = session.runner()
    runner.evaluator.on_training = on_training
    size = population_size(session)
    if size > 1:
        log.info("population training: up to %d candidates per batched pass", size)
    ran = 0
    while True:
        with contextlib.ExitStack() as stack:
            trials: list[optuna.Trial] = []
            try:
                next_population(session, deadline, size, stack, trials)
            except BaseException:  # interrupted while claiming: what was claimed is redone on resume
                runner.abandon(trials)
                raise
            if not trials:
                break
            runner.run_population(trials)
        ran += len(trials)
        if on_trial is not None:
            on_trial()
    return ran


def die_with_parent() -> None:
    """In a spawned worker: receive SIGTERM when the parent ends, even by SIGKILL (Linux ``prctl``)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError) as exc:
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable: %s", exc)
        return
    if str(os.getppid()) != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _spawn(session: Session, index: int, deadline: float | None, threads: int) -> subprocess.Popen[bytes]:
    assert session.run_dir is not None
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           STORAGE_ENV: session.url, PARENT_ENV: str(os.getpid())}  # fmt: skip
    cmd = [sys.executable, "-m", "netcarve.cli.app", "worker", "--study-name", session.study.study_name,
           "--worker-index", str(index)]  # fmt: skip
    if deadline is not None:
        cmd += ["--timeout", f"{max(deadline - time.time(), 1.0):.1f}"]
    with (session.run_dir / f"worker-{index}.log").open("ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _work_remains(session: Session, deadline: float | None) -> bool:
    if _expired(deadline):
        return False
    c = count_trials(session.study)
    target = session.target
    if session.prepared.plan.enumerates:
        return c.waiting > 0
    return target is None or c.done + c.running < target


def stop_workers(procs: list[subprocess.Popen[bytes]], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to every live worker (each records its trial as interrupted), SIGKILL after ``grace_s``."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        p.terminate()
    end = time.time() + grace_s
    for p in live:
        try:
            p.wait(timeout=max(end - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def supervise(session: Session, n: int, deadline: float | None, on_poll: Callable[[], None]) -> None:
    """Run ``n`` worker processes (``netcarve worker``, each logging to ``worker-<i>.log`` in the run dir).

    A worker that dies (killed, crashed) has its trial recovered at once and, while work remains, is
    replaced (at most ``2·n + 2`` replacements, so a worker that cannot start does not loop forever).
    An exception here (Ctrl-C, SIGTERM) stops every worker before it propagates.
    """
    assert session.run_dir is not None
    threads = max(1, (os.cpu_count() or 1) // n)
    procs = {i: _spawn(session, i, deadline, threads) for i in range(n)}
    log.info("started %d worker processes (%d threads each)", n, threads)
    budget = 2 * n + 2
    try:
        while procs:
            on_poll()
            for i, p in list(procs.items()):
                if p.poll() is None:
                    continue
                del procs[i]
                if p.returncode == 0:
                    continue
                log.error("worker %d (pid %d) ended: %s (see %s)", i, p.pid, _exit_text(p.returncode),
                          session.run_dir / f"worker-{i}.log")  # fmt: skip
                reap_dead(session.study, session.storage)
                if budget > 0 and _work_remains(session, deadline):
                    budget -= 1
                    procs[i] = _spawn(session, i, deadline, threads)
                    log.info("worker %d replaced (pid %d)", i, procs[i].pid)
            time.sleep(POLL_S * 2)
    except BaseException:
        stop_workers(list(procs.values()))
        reap_dead(session.study, session.storage)  # a trial claimed the moment its worker was stopped
        raise
    reap_dead(session.study, session.storage)
    on_poll()


def run_study(
    session: Session,
    n_jobs: int,
    timeout: float | None,
    on_progress: Callable[[], None],
    on_training: Callable[[int, int], None] | None = None,
) -> Completion:
    """Run the study to its end: in this process (n_jobs = 1) or in ``n_jobs`` worker processes.
    ``on_training(done, total)``: the training steps of the candidate or population retraining in this
    process (not reported from worker processes)."""
    deadline = time.time() + timeout if timeout is not None else None
    on_progress()
    if n_jobs == 1 or session.run_dir is None:
        work(session, deadline, on_progress, on_training)
    else:
        supervise(session, n_jobs, deadline, on_progress)
    return completion(session, timed_out=_expired(deadline))
