"""A dead worker loses nothing: kill -9 of one of two worker processes in the middle of a 36-configuration
brute force still ends with every configuration complete exactly once and exit 0; on a database storage,
Optuna's heartbeat fails a silent worker's trial and queues its configuration again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from netcarve.config.writer import dumps_toml
from netcarve.search.brute_force import is_stale
from tests.search.helpers import search_dict

#: 6 × 6 = 36 configurations
GRID_SEED = {
    "seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2, 3, 4, 5, 6]}},
    "seq_blocks_4": {"config": {"name": ["both"], "channel_multiplier": [1, 2, 3, 4, 5, 6]}},
}


def journal_study(run_dir: Path) -> optuna.Study | None:
    journal, manifest = run_dir / "study.journal", run_dir / "manifest.json"
    if not journal.exists() or not manifest.exists():
        return None
    name = json.loads(manifest.read_text())["study"]["name"]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def kill_a_running_worker(study_of: object, proc: subprocess.Popen[str], timeout: float = 120) -> int:
    """SIGKILL the process that runs a trial once at least 3 trials are complete; returns its pid."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        study = study_of()  # type: ignore[operator]
        if study is not None:
            trials = study.get_trials(deepcopy=False)
            complete = sum(t.state.name == "COMPLETE" for t in trials)
            running = [t for t in trials if t.state.name == "RUNNING" and "worker" in t.user_attrs]
            mine = [t for t in running if int(t.user_attrs["worker"].rpartition(":")[2]) != proc.pid]
            if complete >= 3 and mine:
                pid = int(mine[0].user_attrs["worker"].rpartition(":")[2])
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.02)
    raise AssertionError("no worker was running a trial to kill")


def assert_every_configuration_once(study: optuna.Study, n: int, killed: int) -> None:
    trials = study.get_trials()
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["grid_id"] for t in done) == list(range(n))  # each exactly once
    assert len({tuple(sorted(t.params.items())) for t in done}) == n
    dead = [t for t in trials if t.state.name == "FAIL"]
    # the killed worker held one trial, or a whole population of them: each is stale and was run again
    assert dead and all(is_stale(t) for t in dead)
    # (a trial the worker was claiming when it was killed has no owner yet: recovered as "died before starting")
    owners = [t.user_attrs.get("worker") for t in dead]
    assert all(w is None or int(w.rpartition(":")[2]) == killed for w in owners)
    assert any(w is not None for w in owners)
    for t in dead:
        if "error" not in t.user_attrs:  # failed by the heartbeat, which records nothing
            continue
        if "worker" in t.user_attrs:  # failed by the pid check
            assert "worker died" in t.user_attrs["error"] and f":{killed} " in t.user_attrs["error"]
        else:  # killed while claiming it, before its owner was recorded
            assert t.user_attrs["error"] == "stale: worker died before starting it"
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]


def test_kill_9_of_one_of_two_workers_loses_no_configuration(tmp_path: Path) -> None:
    """The parent sees the worker die, fails its trial as stale and the configuration is run again."""
    data = search_dict(tmp_path, seed=GRID_SEED, dataset="synthetic-jsc:4000", n_jobs=2)
    data["search"]["strategy"]["sw_runner"]["basic_train"]["max_epochs"] = 4
    (tmp_path / "s.toml").write_text(dumps_toml(data))
    cmd = [sys.executable, "-m", "netcarve.cli.app", "search", "--config", "s.toml"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def study() -> optuna.Study | None:
        found = sorted((tmp_path / "runs" / "t").glob("2*")) if (tmp_path / "runs" / "t").exists() else []
        return journal_study(found[0]) if found else None

    killed = kill_a_running_worker(study, proc)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    final = study()
    assert final is not None
    assert_every_configuration_once(final, 36, killed)
    run_dir = next((tmp_path / "runs" / "t").glob("2*"))
    flat = " ".join(out.split())
    lost = len([t for t in final.get_trials() if t.state.name == "FAIL"])
    assert "36 complete" in flat and f"{lost} interrupted or lost with their worker" in flat
    assert not (run_dir / ".ask.lock").exists()


def test_sigterm_stops_the_workers_and_writes_the_results(tmp_path: Path) -> None:
    """SIGTERM to the parent: its workers end too (no orphan finishes the study), trials.csv and report.html
    are written for what is done, the resume command is printed, and --resume then completes the grid."""
    data = search_dict(tmp_path, seed=GRID_SEED, dataset="synthetic-jsc:4000", n_jobs=2)
    data["search"]["strategy"]["sw_runner"]["basic_train"]["max_epochs"] = 4
    (tmp_path / "s.toml").write_text(dumps_toml(data))
    cmd = [sys.executable, "-m", "netcarve.cli.app", "search", "--config", "s.toml"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    workers: set[int] = set()
    while time.time() < deadline:
        found = sorted((tmp_path / "runs" / "t").glob("2*")) if (tmp_path / "runs" / "t").exists() else []
        study = journal_study(found[0]) if found else None
        trials = study.get_trials(deepcopy=False) if study is not None else []
        workers = {int(t.user_attrs["worker"].rpartition(":")[2]) for t in trials if "worker" in t.user_attrs}
        if sum(t.state.name == "COMPLETE" for t in trials) >= 3 and len(workers) == 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    run_dir = next((tmp_path / "runs" / "t").glob("2*"))
    for pid in workers - {proc.pid}:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert (run_dir / "trials.csv").is_file() and (run_dir / "report.html").is_file()
    assert f"netcarve search --resume {run_dir}" in out
    study = journal_study(run_dir)
    assert study is not None
    assert not [t for t in study.get_trials() if t.state.name == "RUNNING"]
    resumed = subprocess.run([*cmd[:4], "--resume", str(run_dir)], cwd=tmp_path, text=True, capture_output=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    study = journal_study(run_dir)
    assert study is not None
    done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    others = [(t.number, t.state.name, t.user_attrs.get("error"), t.user_attrs.get("stale"), t.user_attrs.get("worker"))
              for t in study.get_trials() if t.state.name != "COMPLETE"]  # fmt: skip
    assert sorted(t.user_attrs["grid_id"] for t in done) == list(range(36)), others


def test_heartbeat_fails_a_silent_remote_trial_and_queues_it_again(tmp_path: Path) -> None:
    """A trial of a worker on another machine (owner not on this host) whose heartbeat stops is failed by
    Optuna's heartbeat check after 2 × heartbeat_interval, and its configuration (grid id 7) queued again."""
    from netcarve.optuna_internals import heartbeat, heartbeat_enabled
    from netcarve.search.recovery import others_running, reap_dead
    from netcarve.search.storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=1)
    assert heartbeat_enabled(storage)
    study = optuna.create_study(storage=storage, study_name="hb")
    study.enqueue_trial({"x": 3}, user_attrs={"grid_id": 7})
    with pytest.warns(UserWarning, match="Heartbeat"):
        trial = study.ask({"x": optuna.distributions.IntDistribution(0, 9)})
    trial.set_user_attr("worker", "another-machine:4242")
    with heartbeat(trial, storage):  # one heartbeat, then silence (as from a worker that died)
        pass
    assert others_running(study, storage)  # remote, but the heartbeat will tell: wait for it
    assert reap_dead(study, storage) == 0 and study.get_trials()[0].state.name == "RUNNING"
    time.sleep(3.5)  # the grace period, 2 × 1 s, passes without a heartbeat (SQLite's clock ticks in seconds)
    reap_dead(study, storage)
    first, retry = study.get_trials()
    assert first.state.name == "FAIL"
    assert retry.state.name == "WAITING"
    assert retry.user_attrs == {"grid_id": 7, "redo_of": 0}
    assert retry.params == {"x": 3}
    assert not others_running(study, storage)


def test_a_journal_never_waits_for_a_remote_trial(tmp_path: Path) -> None:
    """Without heartbeat (journal file), a RUNNING trial of another host cannot be watched: not waited for."""
    from netcarve.search.recovery import others_running, owner_state
    from netcarve.search.storage import open_storage

    storage = open_storage(str(tmp_path / "j.journal"))
    study = optuna.create_study(storage=storage, study_name="j")
    trial = study.ask({"x": optuna.distributions.IntDistribution(0, 9)})
    trial.set_user_attr("worker", "another-machine:1")

    frozen = study.get_trials()[0]
    assert owner_state(frozen) == "remote"
    assert not others_running(study, storage)


def test_an_unreaped_dead_worker_counts_as_dead(tmp_path: Path) -> None:
    """A worker killed by a parent that has not waited for it yet is a zombie: it still has a pid (kill -0
    succeeds) but runs nothing, so its trial is dead, not running (else the others would wait for it)."""
    import platform

    from netcarve.search.recovery import owner_state
    from netcarve.search.storage import open_storage

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 30
    while time.time() < deadline and "Z" not in Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2][:3]:
        time.sleep(0.05)
    study = optuna.create_study(storage=open_storage(str(tmp_path / "j.journal")), study_name="z")
    study.ask({"x": optuna.distributions.IntDistribution(0, 9)}).set_user_attr(
        "worker", f"{platform.node()}:{child.pid}"
    )
    study.ask({"x": optuna.distributions.IntDistribution(0, 9)}).set_user_attr(
        "worker", f"{platform.node()}:{os.getpid()}"
    )
    os.kill(child.pid, 0)  # the pid still exists
    assert [owner_state(t) for t in study.get_trials()] == ["dead", "alive"]
    child.wait()
    assert owner_state(study.get_trials()[0]) == "dead"


def test_an_incomplete_search_says_so_exits_3_and_prints_the_resume_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Configuration 0 is held by a process on another machine that a journal file cannot watch (no
    heartbeat): the other 3 configurations run, then the search ends without waiting, says that 1 of 4
    configurations was not run and 1 trial is still marked running, and exits 3 with the resume command."""
    import typer

    from netcarve.cli.search import _run
    from netcarve.search.api import prepare_search, start_search
    from netcarve.search.brute_force import claim_waiting
    from tests.search.helpers import config

    seed = {"seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2, 3, 4]}}}
    session = start_search(prepare_search(config(search_dict(tmp_path, seed=seed))), None, None)
    held = claim_waiting(session.study, session.storage)
    assert held is not None
    held.set_user_attr("worker", "another-machine:1")
    with pytest.raises(typer.Exit) as exit_info:
        _run(session)
    assert exit_info.value.exit_code == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "the search is incomplete: 1 of 4 configurations not run; 1 trial(s) still marked running" in err
    assert f"netcarve search --resume {session.run_dir}" in err
    done = [t for t in session.study.get_trials() if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["grid_id"] for t in done) == [1, 2, 3]
