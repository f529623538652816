"""The typed trial record: one layout of user attributes (each metric once), read back exactly; a study written in
the previous layout (each metric three times) still resumes, reports and exports; repeats are found by key."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest

from netcarve.metrics import split_groups
from netcarve.search.record import TrialRecord
from tests.search.helpers import config, run_search, search_dict

QUANT = "graph/quantize/mixed_precision_ptq"
#: two configurations: a search of 3 or more trials reuses an earlier result
SEED = {
    "default": {"config": {"name": [None]}},
    "seq_blocks_2": {"config": {"name": ["integer"], "weight_width": [4, 8]}},
}


def test_a_record_round_trips_through_its_attributes_with_each_metric_once() -> None:
    record = TrialRecord(
        worker="host:12",
        grid_id=3,
        stale=True,
        redo_of=1,
        retries=2,
        config_key="abc",
        transforms=(("quantize", {"by": "name", "seq_blocks_2": {"weight_width": 4}}),),
        metrics={"accuracy": 0.75, "bitops": 1024.0},
        scaled_metrics={"accuracy": 0.75},
        train_steps=0,
        duration_s=0.5,
        population=4,
        reused_from=0,
        pruned="invalid configuration: x",
        pruned_epoch=2,
        front=({"epoch": 3, "metrics": {"accuracy": 0.5, "ebops": 10.0}, "checkpoint": "trials/t/epoch-3.pt"},),
        design_epoch=3,
        error="E: x",
        traceback="tb",
        internal_error=True,
        log="trials/trial-3.log",
    )
    attrs = record.attrs()
    assert TrialRecord.from_attrs(json.loads(json.dumps(attrs))) == record  # JSON, as a storage keeps them
    assert attrs["metric.accuracy"] == 0.75 and attrs["metric.bitops"] == 1024.0
    assert [k for k, v in attrs.items() if v == 0.75] == ["metric.accuracy"]  # stored once (scaled aside)
    assert not {"metrics", "software_metrics", "hardware_metrics"} & set(attrs)
    assert list(attrs).index("stale") < list(attrs).index("error")  # a stale trial never looks failed on its own


def test_only_set_fields_are_written() -> None:
    """train_steps 0 is a value (a pruned trial trained 0 steps); None, False and empty groups are not written."""
    assert TrialRecord(train_steps=0).attrs() == {"train_steps": 0}
    assert TrialRecord(config_key="k").attrs() == {"config_key": "k"}
    assert TrialRecord().attrs() == {}


def test_the_previous_layout_reads_as_one_record() -> None:
    """Old trials held ``metrics``, the software/hardware groups and (later) flat ``metric.<name>``: one metric
    dict comes back; the flat value wins where they disagree; the groups alone (the oldest studies) suffice."""
    old = {
        "config_key": "k",
        "metrics": {"accuracy": 0.5, "bitops": 10.0},
        "software_metrics": {"accuracy": 0.5},
        "hardware_metrics": {"bitops": 10.0},
        "metric.accuracy": 0.5,
        "metric.bitops": 10.0,
        "scaled_metrics": {"accuracy": 0.5},
        "train_steps": 7,
        "transforms": [["quantize", {"by": "name"}]],
    }
    record = TrialRecord.from_attrs(old)
    assert record.metrics == {"accuracy": 0.5, "bitops": 10.0}
    assert record.scaled_metrics == {"accuracy": 0.5} and record.train_steps == 7
    assert record.transforms == (("quantize", {"by": "name"}),)
    groups_only = {"software_metrics": {"accuracy": 0.25}, "hardware_metrics": {"params": 3}}
    assert TrialRecord.from_attrs(groups_only).metrics == {"accuracy": 0.25, "params": 3.0}
    assert TrialRecord.from_attrs({"metrics": {"a": 1.0}, "metric.a": 2.0}).metrics == {"a": 2.0}


def _old_layout(attrs: dict[str, Any], flat: bool) -> dict[str, Any]:
    """A trial's attributes as the previous layout wrote them: every metric in ``metrics``, in its group and
    (``flat``; studies before issue 9 had no flat ones) as ``metric.<name>``."""
    record = TrialRecord.from_attrs(attrs)
    out = {k: v for k, v in attrs.items() if flat or not k.startswith("metric.")}
    if record.metrics:
        software, hardware = split_groups(record.metrics)
        out.update(metrics=dict(record.metrics), software_metrics=software, hardware_metrics=hardware)
    return out


def _rewrite_in_old_layout(run_dir: Path, name: str) -> dict[int, dict[str, float]]:
    """Replace the run dir's journal by a copy of its study whose trials carry the previous layout; returns
    each finished trial's metrics."""
    journal = run_dir / "study.journal"
    source = optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))  # fmt: skip
    new_path = run_dir / "old.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(new_path)))
    study = optuna.create_study(study_name=name, storage=storage, directions=source.directions)
    for key, value in source.user_attrs.items():
        study.set_user_attr(key, value)
    metrics = {}
    for t in source.get_trials():
        attrs = _old_layout(t.user_attrs, flat=t.number % 2 == 0)
        study.add_trial(optuna.trial.create_trial(
            state=t.state, values=t.values if t.state.name == "COMPLETE" else None, params=t.params,
            distributions=t.distributions, user_attrs=attrs, system_attrs=t.system_attrs,
        ))  # fmt: skip
        metrics[t.number] = dict(TrialRecord.of(t).metrics)
    shutil.move(new_path, journal)
    return metrics


def test_a_study_in_the_previous_layout_resumes_reports_and_exports(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An eval-mode search of 3 trials over 2 configurations, its journal rewritten in the old layout, then
    resumed to 5 trials: the new trials reuse the old ones by configuration key (2 configurations, so every
    new trial is a repeat), trials.csv and best.json carry the old trials' metrics, the report loads and
    trial 0 is rebuilt for export. Neither --resume nor the export builds the space's choices again: both take
    them as the study checked them."""
    from netcarve.data import load_dataset
    from netcarve.report.load import load_run
    from netcarve.search.finish import finish
    from netcarve.search.lookup import run_model
    from netcarve.search.resume import resume_search
    from netcarve.search.runner import run_study
    from netcarve.train.loop import evaluate

    data = search_dict(tmp_path, space=QUANT, seed=SEED, model="jsc-toy", sampler="random", n_trials=3,
                       eval_mode=True)  # fmt: skip
    session = run_search(config(data))
    run_dir = session.run_dir
    assert run_dir is not None
    assert len({t.user_attrs["config_key"] for t in session.study.get_trials()}) == 2  # both evaluated
    metrics = _rewrite_in_old_layout(run_dir, session.study.study_name)
    caplog.set_level(logging.INFO, logger="netcarve.search.session")
    caplog.clear()
    resumed = resume_search(run_dir, None, 5, None)
    run_study(resumed, 1, None, lambda: None)
    finish(resumed)
    done = {t.number: t for t in resumed.study.get_trials() if t.state.name == "COMPLETE"}
    assert len(done) == 5
    for number in (3, 4):  # the resumed ones: reused, with the old trial's metrics, written in the new layout
        record = TrialRecord.of(done[number])
        assert record.reused_from is not None and record.reused_from < 3
        assert record.metrics == metrics[record.reused_from]
        assert "metrics" not in done[number].user_attrs
    with (run_dir / "trials.csv").open() as fh:
        rows = {int(r["number"]): r for r in csv.DictReader(fh)}
    for number, expected in metrics.items():
        assert {k: float(rows[number][k]) for k in expected} == pytest.approx(expected, rel=1e-12)
    best = json.loads((run_dir / "best.json").read_text())["best"][0]
    assert best["metrics"] == pytest.approx(metrics[best["number"]], rel=1e-12)
    assert best["software_metrics"]["accuracy"] == pytest.approx(metrics[best["number"]]["accuracy"], rel=1e-12)
    report = {t.number: t for t in load_run(run_dir).trials}
    assert {n: report[n].metrics["accuracy"] for n in metrics} == pytest.approx(
        {n: m["accuracy"] for n, m in metrics.items()}, rel=1e-12
    )
    graph, dataset = run_model(run_dir, 0)  # eval mode: rebuilt from the base and trial 0's transforms
    prepared = [r.getMessage() for r in caplog.records if r.getMessage().startswith("search prepared")]
    assert prepared == [f"search prepared (pid {os.getpid()}): choices as the study checked them"] * 2
    assert dataset == "synthetic-jsc:2000"
    splits = load_dataset(dataset)
    assert evaluate(graph.module, splits.val).accuracy == pytest.approx(metrics[0]["accuracy"], rel=1e-12)


def _finished(study: optuna.Study, key: str, state: str = "COMPLETE") -> None:
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState[state], value=1.0 if state == "COMPLETE" else None,
        user_attrs=TrialRecord(config_key=key).attrs(),
    ))  # fmt: skip


def test_the_repeat_index_finds_the_first_finished_trial_of_a_key() -> None:
    """Trials finished after the index was made (by other processes) are found; a running trial is not a
    source until it finishes; the trial asking is never its own source; the lowest number wins."""
    from netcarve.search.repeats import RepeatIndex

    study = optuna.create_study()
    index = RepeatIndex(study)
    assert index.find("a", 0) is None
    _finished(study, "a")  # 0
    running = study.ask()  # 1, running
    running.set_user_attr("config_key", "b")
    _finished(study, "a", "PRUNED")  # 2
    found = index.find("a", 5)
    assert found is not None and found.number == 0
    assert index.find("b", 5) is None  # trial 1 is still running
    study.tell(running, 2.0)
    found = index.find("b", 5)
    assert found is not None and found.number == 1
    assert index.find("b", 1) is None  # a trial does not repeat itself
    _finished(study, "c", "FAIL")  # 3
    assert index.find("c", 5) is None  # a failed trial is no source
    assert index._unfinished == set()  # nor looked at again


def test_the_repeat_index_reads_each_trial_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """n trials, each looking for its own (new) key as it starts: a scan reads n(n−1)/2 keys (4 950 for n =
    100); the index reads each finished trial's key once (100)."""
    from netcarve.search import repeats

    reads = []
    monkeypatch.setattr(repeats, "config_key", lambda t: reads.append(t.number) or TrialRecord.of(t).config_key)
    study = optuna.create_study()
    index = repeats.RepeatIndex(study)
    for n in range(100):
        assert index.find(f"k{n}", n) is None
        _finished(study, f"k{n}")
    assert sorted(reads) == list(range(99))  # the last one was never looked at: nothing asked after it
    found = index.find("k42", 100)  # indexed: no read
    assert found is not None and found.number == 42 and len(reads) == 99
    found = index.find("k99", 100)  # a miss reads only what is new: trial 99
    assert found is not None and found.number == 99 and sorted(reads) == list(range(100))
