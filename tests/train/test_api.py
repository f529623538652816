"""The library runners behind ``netcarve train`` and ``netcarve test``: what they return is what they wrote."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from netcarve.configure import build_config
from netcarve.errors import ConfigError
from netcarve.train import evaluate, load_graph
from netcarve.train.api import run_test, run_train, start_train


def config_in(tmp_path: Path, *sets: str):  # type: ignore[no-untyped-def]
    flags = {"model": "jsc-toy", "dataset": "synthetic-jsc:600", "max_epochs": 2, "batch_size": 32}
    return build_config(None, flags, [f"project_dir='{tmp_path}'", "project='p'", *sets])


def test_run_train_returns_what_it_writes(tmp_path: Path) -> None:
    """metrics.json equals the outcome's metrics; its evaluations are best.pt's, re-evaluated from the file;
    the run took ceil(train rows / 32) steps per epoch."""
    outcome = run_train(config_in(tmp_path))
    assert outcome.run_dir.parent == tmp_path / "p"
    assert json.loads((outcome.run_dir / "metrics.json").read_text()) == outcome.metrics
    best = load_graph(outcome.run_dir / "best.pt", "jsc-toy", outcome.info)
    job = start_train(config_in(tmp_path))  # the same data, loaded again: a second run dir, nothing trained
    assert job.run_dir != outcome.run_dir and not (job.run_dir / "best.pt").exists()
    for name, result in outcome.evaluations.items():
        assert evaluate(best.module, job.splits.split(name)) == result
    assert outcome.fit.steps == 2 * math.ceil(len(job.splits.train) / 32)
    assert outcome.metrics["test_accuracy"] == outcome.evaluations["test"].accuracy


def test_log_every_n_steps_from_the_config_reaches_the_progress(tmp_path: Path) -> None:
    seen: list[int] = []
    job = start_train(config_in(tmp_path, "log_every_n_steps=4", "max_epochs=1"))
    job.run(lambda step, total, loss, acc: seen.append(step))
    total = math.ceil(len(job.splits.train) / 32)
    assert seen == [s for s in range(1, total + 1) if s % 4 == 0 or s == total]


def test_run_test_reproduces_the_trained_test_accuracy(tmp_path: Path) -> None:
    trained = run_train(config_in(tmp_path, "max_epochs=1"))
    tested = run_test(config_in(tmp_path, f"load_name='{trained.run_dir / 'best.pt'}'"), "test")
    assert tested.result == trained.evaluations["test"]
    assert json.loads((tested.run_dir / "metrics.json").read_text()) == tested.metrics
    assert tested.metrics["accuracy"] == trained.metrics["test_accuracy"]


def test_run_test_needs_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="test needs a checkpoint"):
        run_test(config_in(tmp_path))
    assert not (tmp_path / "p").exists()
