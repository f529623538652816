"""kill -9 in the middle of a study, then --resume: exactly n_trials done, completed trials never redone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

from netcarve.cli.app import app
from netcarve.config.writer import dumps_toml
from tests.search.helpers import search_dict

N_TRIALS = 8


def all_trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials in the run dir's journal (none before the study exists)."""
    journal, manifest = run_dir / "study.journal", run_dir / "manifest.json"
    if not journal.exists() or not manifest.exists():
        return []
    name = json.loads(manifest.read_text())["study"]["name"]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    except KeyError:  # the study is not created yet
        return []


def completed(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    return [t for t in all_trials(run_dir) if t.state.name == "COMPLETE"]


def start_and_kill(tmp_path: Path, sampler: str, after: int) -> Path:
    seed = {
        "seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2, 3, 4]}},
        "seq_blocks_4": {"config": {"name": ["both"], "channel_multiplier": [1, 2, 3, 4]}},
    }
    # populations of 2: the kill after 3 completed trials comes between two populations, never after the last
    data = search_dict(tmp_path, seed=seed, sampler=sampler, n_trials=N_TRIALS, dataset="synthetic-jsc:20000",
                       population=2)  # fmt: skip
    path = tmp_path / "search.toml"
    path.write_text(dumps_toml(data))
    cmd = [sys.executable, "-m", "netcarve.cli.app", "search", "--config", str(path)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "runs").glob("t/2*")) if (tmp_path / "runs").exists() else []
        run_dir = found[0] if found else None
        if run_dir is not None and len(completed(run_dir)) >= after:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the search ended before it could be killed"
    assert run_dir is not None
    return run_dir


@pytest.mark.parametrize("sampler", ["tpe", "brute_force"])
def test_kill_9_then_resume_completes_exactly_n_trials(tmp_path: Path, sampler: str) -> None:
    run_dir = start_and_kill(tmp_path, sampler, after=3)
    before = {t.number: t.values for t in completed(run_dir)}
    assert 3 <= len(before) < N_TRIALS
    result = CliRunner().invoke(app, ["search", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    trials = all_trials(run_dir)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == N_TRIALS
    assert {t.number: t.values for t in done if t.number in before} == before  # kept, not redone
    evaluated = [tuple(sorted(t.params.items())) for t in done if "reused_from" not in t.user_attrs]
    assert len(evaluated) == len(set(evaluated))  # no configuration evaluated twice
    failed = [t for t in trials if t.state.name == "FAIL"]
    # the killed process's trial, or each trial of the population it was training, is stale and redone
    assert all(t.user_attrs.get("stale") for t in failed)
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    if sampler == "brute_force":
        assert sorted(t.user_attrs["grid_id"] for t in done) == list(range(N_TRIALS))
    assert (run_dir / "best.pt").is_file() and (run_dir / "trials.csv").is_file()


def test_kill_9_while_the_base_trains_then_resume_completes(tmp_path: Path) -> None:
    """Eval mode without --load trains base.pt first. The study is created and recorded before that, so a
    search killed during base training resumes: the base is trained again, then every trial runs."""
    space = "graph/quantize/mixed_precision_ptq"
    data = search_dict(
        tmp_path, space=space, sampler="brute_force", eval_mode=True, model="jsc-toy", dataset="synthetic-jsc:20000"
    )
    data["max_epochs"] = 200  # long enough to be killed in the middle
    path = tmp_path / "search.toml"
    path.write_text(dumps_toml(data))
    cmd = [sys.executable, "-m", "netcarve.cli.app", "search", "--config", str(path)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    run_dir = None
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "runs").glob("t/2*")) if (tmp_path / "runs").exists() else []
        run_dir = found[0] if found else None
        if run_dir is not None and all_trials(run_dir):  # the study exists, its grid is queued
            time.sleep(0.5)
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and run_dir is not None
    assert not (run_dir / "base.pt").exists()
    assert not completed(run_dir)
    result = CliRunner().invoke(app, ["search", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert (run_dir / "base.pt").is_file()
    trials = all_trials(run_dir)
    size = len(trials)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["grid_id"] for t in done) == list(range(size))


def test_a_copied_or_moved_run_dir_uses_its_own_study(tmp_path: Path) -> None:
    """A finished eval-mode search (its base.pt trained in the run dir), copied: resuming the copy for one
    more trial writes into the copy's journal only (the original's is byte-identical), and the copy's study
    now names the copy as its run dir, base and load_name. The original, moved: its best trial exports and
    --resume reads its own journal (nothing left to do)."""
    import shutil

    from netcarve.search.api import trial_graph
    from netcarve.search.storage import CONFIG_ATTR, RUN_DIR_ATTR

    data = search_dict(tmp_path, space="graph/quantize/mixed_precision_ptq", model="jsc-toy", sampler="random",
                       n_trials=2, eval_mode=True)  # fmt: skip
    path = tmp_path / "search.toml"
    path.write_text(dumps_toml(data))
    assert CliRunner().invoke(app, ["search", "--config", str(path)]).exit_code == 0
    (run_dir,) = (tmp_path / "runs").glob("t/2*")
    original = (run_dir / "study.journal").read_bytes()
    copy = shutil.copytree(run_dir, tmp_path / "copy")
    result = CliRunner().invoke(app, ["search", "--resume", str(copy), "--n-trials", "3"])
    assert result.exit_code == 0, result.output
    assert (run_dir / "study.journal").read_bytes() == original
    assert len(completed(copy)) == 3 and len(completed(run_dir)) == 2
    name = json.loads((copy / "manifest.json").read_text())["study"]["name"]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(copy / "study.journal")))
    attrs = optuna.load_study(study_name=name, storage=storage).user_attrs
    assert attrs[RUN_DIR_ATTR] == str(copy.resolve())
    assert attrs["netcarve.base"] == attrs[CONFIG_ATTR]["load_name"] == str(copy.resolve() / "base.pt")

    moved = run_dir.rename(tmp_path / "moved")
    graph, _ = trial_graph(moved, None)
    assert sum(p.numel() for p in graph.module.parameters()) > 0
    result = CliRunner().invoke(app, ["search", "--resume", str(moved)])
    assert result.exit_code == 0, result.output
    assert len(completed(moved)) == 2


def _finished_run(tmp_path: Path) -> Path:
    data = search_dict(tmp_path, sampler="random", n_trials=2)
    path = tmp_path / "search.toml"
    path.write_text(dumps_toml(data))
    assert CliRunner().invoke(app, ["search", "--config", str(path)]).exit_code == 0
    (run_dir,) = (tmp_path / "runs").glob("t/2*")
    return run_dir


def test_resume_removes_an_incomplete_last_journal_record(tmp_path: Path) -> None:
    """A journal ending in half a record (killed or copied mid-write): Optuna skips it when reading, but a
    record appended after it would make the journal unreadable. --resume removes it first (a warning), runs
    one more trial, and the journal reads back whole: 3 complete trials."""
    run_dir = _finished_run(tmp_path)
    journal = run_dir / "study.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 5, "worker_id": "x", "trial_id": 0, "us')
    result = CliRunner().invoke(app, ["search", "--resume", str(run_dir), "--n-trials", "3"])
    assert result.exit_code == 0, result.output
    assert journal.read_bytes().startswith(whole) and journal.read_bytes().endswith(b"\n")
    assert len(completed(run_dir)) == 3


def test_resume_refuses_a_journal_it_would_share(tmp_path: Path) -> None:
    """A copy whose study.journal is a hard link to the original's (cp -al), and a copy without a journal of
    its own (its manifest names the original's): --resume refuses both, and the original's journal is
    byte-identical."""
    import shutil

    run_dir = _finished_run(tmp_path)
    original = (run_dir / "study.journal").read_bytes()
    linked = shutil.copytree(run_dir, tmp_path / "linked")
    (linked / "study.journal").unlink()
    os.link(run_dir / "study.journal", linked / "study.journal")
    result = CliRunner().invoke(app, ["search", "--resume", str(linked), "--n-trials", "3"])
    assert result.exit_code != 0 and "is a hard link shared with another file" in result.output
    bare = shutil.copytree(run_dir, tmp_path / "bare")
    (bare / "study.journal").unlink()
    result = CliRunner().invoke(app, ["search", "--resume", str(bare), "--n-trials", "3"])
    assert result.exit_code != 0 and "has no study.journal of its own" in result.output
    assert (run_dir / "study.journal").read_bytes() == original


def test_a_resumed_random_search_does_not_repeat_its_first_suggestions(tmp_path: Path) -> None:
    """A random search of 4 trials over the 36 Lab 4 widths, resumed to 8: the resumed sampler is seeded
    anew (seed + 1 000 003 per resume), so its 4 suggestions are not the first run's 4 again (with the same
    seed all 4 were repeats, each reusing an earlier result). Here at most one of them is a repeat."""
    from tests.search.test_worker_death import GRID_SEED

    data = search_dict(tmp_path, sampler="random", n_trials=4, seed=GRID_SEED)
    path = tmp_path / "search.toml"
    path.write_text(dumps_toml(data))
    assert CliRunner().invoke(app, ["search", "--config", str(path)]).exit_code == 0
    (run_dir,) = (tmp_path / "runs").glob("t/2*")
    result = CliRunner().invoke(app, ["search", "--resume", str(run_dir), "--n-trials", "8"])
    assert result.exit_code == 0, result.output
    done = sorted(completed(run_dir), key=lambda t: t.number)
    assert len(done) == 8
    assert sum("reused_from" in t.user_attrs for t in done[4:]) <= 1


def test_resume_of_a_read_only_run_dir_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run dir that cannot be written (a read-only mount: os.access says so, even for root): one line, no
    traceback, and the journal untouched."""
    run_dir = _finished_run(tmp_path)
    journal = (run_dir / "study.journal").read_bytes()
    access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: access(path, mode) and not (Path(path) == run_dir and mode & os.W_OK)
    )
    result = CliRunner().invoke(app, ["search", "--resume", str(run_dir), "--n-trials", "3"])
    assert result.exit_code != 0 and "is not writable: --resume writes its journal" in result.output
    assert "Traceback" not in result.output
    assert (run_dir / "study.journal").read_bytes() == journal


def test_resume_refuses_a_journal_symlinked_to_another_run_and_leaves_foreign_files_whole(tmp_path: Path) -> None:
    """A copy whose study.journal is a symlink to the original's: refused (it would write into the
    original's study). A --storage file that is not a journal and ends without a line end: left byte for byte
    as it was (only a journal's incomplete last record is ever removed)."""
    import shutil

    run_dir = _finished_run(tmp_path)
    original = (run_dir / "study.journal").read_bytes()
    linked = shutil.copytree(run_dir, tmp_path / "symlinked")
    (linked / "study.journal").unlink()
    (linked / "study.journal").symlink_to(run_dir / "study.journal")
    result = CliRunner().invoke(app, ["search", "--resume", str(linked), "--n-trials", "3"])
    assert result.exit_code != 0 and "is another run dir's" in result.output
    assert (run_dir / "study.journal").read_bytes() == original
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"my important notes\nline two without a line end")
    result = CliRunner().invoke(app, ["search", "--resume", str(run_dir), "--storage", str(notes)])
    assert result.exit_code != 0
    assert notes.read_bytes() == b"my important notes\nline two without a line end"


def test_resume_with_a_read_only_journal_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = _finished_run(tmp_path)
    journal = (run_dir / "study.journal").resolve()
    access = os.access

    def no_write(path: Any, mode: int) -> bool:
        return access(path, mode) and not (Path(path) == journal and mode & os.W_OK)

    monkeypatch.setattr(os, "access", no_write)
    result = CliRunner().invoke(app, ["search", "--resume", str(run_dir), "--n-trials", "3"])
    assert result.exit_code != 0 and "is not writable (nor its lock file)" in result.output


def test_resume_of_a_journal_damaged_in_the_middle_says_where_and_what_to_do(tmp_path: Path) -> None:
    """A line in the middle of study.journal cut short (a bad edit, a disk error): --resume is one error line
    naming the journal, the line and the repair; the journal is left byte for byte as it was. The repair it
    gives (keep the records before the line) leaves a journal Optuna reads, with the first trial complete."""
    import shlex

    from netcarve.search import storage as st
    from tests.e2e.cli import run_error

    run_dir = _finished_run(tmp_path)
    journal = run_dir / "study.journal"
    lines = journal.read_bytes().split(b"\n")[:-1]
    first_complete = next(i for i, r in enumerate(map(json.loads, lines)) if r["op_code"] == 6 and r["state"] == 1)
    damaged = first_complete + 3  # 1-based: two records after the first trial's completion
    assert damaged < len(lines)
    lines[damaged - 1] = lines[damaged - 1][:40]
    text = b"\n".join(lines) + b"\n"
    journal.write_bytes(text)
    line = run_error("search", "--resume", str(run_dir), "--n-trials", "3")
    assert line.startswith(
        f"error: the study journal {str(journal)!r} is damaged: line {damaged} of {len(lines)} is not a journal "
        f"record (changed or cut by something other than netcarve), so the study cannot be read; to continue from "
        f"the {damaged - 1} records before it"
    )
    repair = f"cp {shlex.quote(str(journal))} damaged.journal && head -n {damaged - 1} damaged.journal > "
    assert repair in line and "JSONDecodeError" not in line
    assert journal.read_bytes() == text
    journal.write_bytes(b"\n".join(lines[: damaged - 1]) + b"\n")
    (name,) = optuna.get_all_study_names(st.open_storage(str(journal)))
    study = optuna.load_study(study_name=name, storage=st.open_storage(str(journal)))
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE


@pytest.mark.parametrize(
    "record",
    [
        b'{"op_code": 99}',  # JSON with an op code Optuna does not know (its replay: "AssertionError")
        b'{"op_code": "6"}',  # the op code as a string
        b'{"op_code": 4}',  # a known op code without its fields (its replay: "KeyError: 'study_id'")
        b'{"op_code": 2, "study_id": 0}',  # a study attribute without the attribute
    ],
)
def test_resume_of_a_journal_with_a_record_optuna_cannot_replay_names_the_line(tmp_path: Path, record: bytes) -> None:
    """A line in the middle of study.journal that is JSON but not a record Optuna can replay is named as
    damaged like a line that is not JSON (not "cannot reach the study storage …: AssertionError"), and the
    journal is left byte for byte as it was."""
    from tests.e2e.cli import run_error

    run_dir = _finished_run(tmp_path)
    journal = run_dir / "study.journal"
    lines = journal.read_bytes().split(b"\n")[:-1]
    lines[4] = record
    text = b"\n".join(lines) + b"\n"
    journal.write_bytes(text)
    line = run_error("search", "--resume", str(run_dir), "--n-trials", "3")
    assert line.startswith(
        f"error: the study journal {str(journal)!r} is damaged: line 5 of {len(lines)} is not a journal record"
    ), line
    assert "head -n 4 damaged.journal" in line
    assert journal.read_bytes() == text
