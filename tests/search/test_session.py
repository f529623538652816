"""A search is prepared once per process: the parent builds its plan once and checks every choice; each
worker process prepares once and takes the choices as the study checked them (no validity sweep again)."""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from netcarve.search.record import TrialRecord
from tests.search.helpers import config, run_search, search_dict, trials

#: 6 × 6 widths: 36 configurations
GRID_SEED = {
    "seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2, 3, 4, 5, 6]}},
    "seq_blocks_4": {"config": {"name": ["both"], "channel_multiplier": [1, 2, 3, 4, 5, 6]}},
}
PREPARED = re.compile(r"search prepared \(pid (\d+)\): (.+)")


def test_a_brute_force_with_two_workers_prepares_once_per_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each process logs its one prepare with its pid: this process (the parent) once, every choice checked,
    its plan made once; each of the two workers (worker-<i>.log) once, the choices taken from the study."""
    from netcarve.search import session as session_module
    from netcarve.search import start

    plans = []
    make_plan = start.make_plan
    for module in (start, session_module):
        monkeypatch.setattr(module, "make_plan", lambda cfg: plans.append(1) or make_plan(cfg))
    caplog.set_level(logging.DEBUG, logger="netcarve.search.session")
    session = run_search(config(search_dict(tmp_path, seed=GRID_SEED, n_jobs=2)), n_jobs=2)
    assert session.run_dir is not None
    done = trials(session, "COMPLETE")
    assert sorted(TrialRecord.of(t).grid_id for t in done) == list(range(36))  # type: ignore[type-var]
    parent = [PREPARED.search(r.getMessage()) for r in caplog.records]
    assert [(m[1], m[2]) for m in parent if m] == [(str(os.getpid()), "every choice checked")]
    assert len(plans) == 1
    logged = [m for path in sorted(session.run_dir.glob("worker-*.log")) for m in PREPARED.findall(path.read_text())]
    per_pid = Counter(pid for pid, _ in logged)
    assert len(per_pid) == 2 and set(per_pid.values()) == {1}, logged  # two workers, each prepared once
    assert {how.strip() for _, how in logged} == {"choices as the study checked them"}
    owners = {(TrialRecord.of(t).worker or "").rpartition(":")[2] for t in done}
    assert owners <= set(per_pid) and owners  # the trials ran in those processes
