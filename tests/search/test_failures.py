"""Issue 9 item 8: a failed trial keeps its diagnosis (error, traceback, trials/trial-<n>.log); a bug in
netcarve (any exception that is not a NetcarveError or a numeric failure) fails its trial too, flagged as an
internal error and reported loudly at the end, and the study goes on."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import pytest

from netcarve.errors import TrainingError
from netcarve.search.candidate import CandidateEvaluator
from tests.search.helpers import config, run_search, search_dict, trials


def failing_software(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    """Candidates whose seq_blocks_2 is doubled (2 of the 4) raise ``exc`` when evaluated."""
    real = CandidateEvaluator.software

    def software(self: CandidateEvaluator, graph: Any) -> dict[str, float]:
        if graph.module.get_submodule("seq_blocks.2").out_features == 32:
            raise exc
        return real(self, graph)

    monkeypatch.setattr(CandidateEvaluator, "software", software)


def csv_rows(run_dir: Path) -> dict[int, dict[str, str]]:
    with (run_dir / "trials.csv").open(newline="") as fh:
        return {int(row["number"]): row for row in csv.DictReader(fh)}


def test_a_bad_candidate_fails_with_its_error_and_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failing_software(monkeypatch, TrainingError("training diverged: loss is nan in epoch 0"))
    with caplog.at_level(logging.WARNING):
        session = run_search(config(search_dict(tmp_path)))
    failed = trials(session, "FAIL")
    assert len(failed) == 2 and len(trials(session, "COMPLETE")) == 2
    run_dir = session.run_dir
    assert run_dir is not None
    rows = csv_rows(run_dir)
    for t in failed:
        attrs = t.user_attrs
        assert attrs["error"] == "TrainingError: training diverged: loss is nan in epoch 0"
        assert attrs["traceback"].startswith("Traceback (most recent call last):")
        assert "in software" in attrs["traceback"] and attrs["traceback"].rstrip().endswith(attrs["error"])
        assert "internal_error" not in attrs
        assert attrs["log"] == f"trials/trial-{t.number}.log"
        assert (run_dir / attrs["log"]).read_text() == attrs["traceback"]
        assert rows[t.number]["log"] == attrs["log"] and rows[t.number]["internal_error"] == ""
    assert "bug in netcarve" not in caplog.text


def test_a_bug_fails_its_trial_flagged_internal_and_the_study_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failing_software(monkeypatch, ZeroDivisionError("division by zero"))
    with caplog.at_level(logging.WARNING):
        session = run_search(config(search_dict(tmp_path)))
    failed = trials(session, "FAIL")
    assert len(failed) == 2 and len(trials(session, "COMPLETE")) == 2  # the other trials ran
    for t in failed:
        assert t.user_attrs["internal_error"] is True
        assert t.user_attrs["error"] == "ZeroDivisionError: division by zero"
        assert "Traceback (most recent call last):" in t.user_attrs["traceback"]
        assert "ZeroDivisionError: division by zero" in t.user_attrs["traceback"]
    run_dir = session.run_dir
    assert run_dir is not None
    assert all(csv_rows(run_dir)[t.number]["internal_error"] == "True" for t in failed)
    numbers = ", ".join(str(t.number) for t in failed)
    end = [r for r in caplog.records if r.levelno == logging.ERROR and "this is a bug in netcarve" in r.getMessage()]
    assert any(f"trial(s) {numbers} failed with an internal error" in r.getMessage() for r in end)
    assert (run_dir / "best.pt").is_file()  # the search finished normally
