"""``netcarve search`` / ``netcarve worker`` end to end: every shipped search config, outputs, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.e2e.cli import CONFIGS, run

RUN_FILES = {"config.toml", "manifest.json", "study.journal", "trials.csv", "log.json", "best.json", "best.pt"}


def run_dir_of(root: Path, project: str) -> Path:
    return (root / "runs" / project / "latest").resolve()


def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "trials.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_lab4_width_digits_retrains_every_one_of_36_configurations(in_tmp: Path) -> None:
    code, out = run("search", "--config", str(CONFIGS / "search_lab4_width_digits.toml"), "--project", "w")
    assert code == 0, out
    run_dir = run_dir_of(in_tmp, "w")
    assert {p.name for p in run_dir.iterdir()} >= RUN_FILES
    trials = rows(run_dir)
    assert len(trials) == 36 and {t["state"] for t in trials} == {"COMPLETE"}
    assert sorted(int(t["grid_id"]) for t in trials) == list(range(36))
    assert all(int(t["train_steps"]) > 0 for t in trials)
    assert "Best trial(s)" in out and "software_metrics" in out and "scaled_metrics" in out


def test_lab3_quantize_digits_trains_the_base_first_and_best_pt_reproduces(in_tmp: Path) -> None:
    from netcarve.data import load_dataset
    from netcarve.train import evaluate, load_graph

    code, out = run("search", "--config", str(CONFIGS / "search_lab3_quantize_digits.toml"), "--project", "q")
    assert code == 0, out
    run_dir = run_dir_of(in_tmp, "q")
    assert (run_dir / "base.pt").is_file()
    best = json.loads((run_dir / "best.json").read_text())["best"][0]
    assert best["user_attrs"]["train_steps"] == 0  # eval mode: post-training quantization only
    splits = load_dataset("digits")
    graph = load_graph(run_dir / "best.pt", "jsc-toy", splits.info)
    assert graph.spec is not None and graph.spec.transforms[0][0] == "quantize"
    assert evaluate(graph.module, splits.val).accuracy == pytest.approx(best["metrics"]["accuracy"])
    assert best["metrics"]["accuracy"] > 0.5


def test_joint_digits_prunes_oversized_candidates_and_reports_a_pareto_front(in_tmp: Path) -> None:
    code, out = run("search", "--config", str(CONFIGS / "search_joint_digits.toml"), "--project", "j")
    assert code == 0, out
    run_dir = run_dir_of(in_tmp, "j")
    trials = rows(run_dir)
    assert len([t for t in trials if t["state"] in ("COMPLETE", "PRUNED")]) == 12
    assert all(float(t["model_size"]) > 8192 for t in trials if t["state"] == "PRUNED")
    best = json.loads((run_dir / "best.json").read_text())
    assert best["directions"] == ["maximize", "minimize"] and best["best"]


@pytest.mark.parametrize(
    ("name", "size", "learned"),
    [
        ("search_lab3_quantize_jsc.toml", "5,832", False),
        ("search_lab4_width_jsc.toml", "36", False),
        ("search_joint_jsc.toml", "27", False),
        ("search_learned_digits.toml", "192", True),  # 4 × 4 × 4 widths × 3 betas (the pass's own searched key)
    ],
)
def test_configs_dry_run(in_tmp: Path, name: str, size: str, learned: bool) -> None:
    code, out = run("search", "--config", str(CONFIGS / name), "--dry-run")
    assert code == 0, out
    assert f"{size} configurations" in out and "dry run" in out
    assert ("learned candidates validate every epoch" in " ".join(out.replace("│", " ").split())) == learned
    assert not (in_tmp / "runs").exists()


def test_worker_joins_a_study_with_storage_and_name_only(in_tmp: Path) -> None:
    from netcarve.configure import build_config
    from netcarve.search.api import prepare_search, start_search

    cfg = build_config(CONFIGS / "search_lab4_width_digits.toml", {"project": "k"},
                       ["search.strategy.setup.n_trials=3"])  # fmt: skip
    session = start_search(prepare_search(cfg), None, "shared")
    code, out = run("worker", "--storage", session.url, "--study-name", "shared")
    assert code == 0, out
    assert "ran 3 trial(s)" in out
    assert len(session.study.get_trials(states=None)) == 3


def one_line_error(code: int, out: str, *needles: str) -> None:
    assert code == 2, out
    lines = [line for line in out.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error:"), out
    for needle in needles:
        assert needle in out.replace("\n", " "), out


def test_bad_input_is_one_line_exit_2(in_tmp: Path) -> None:
    cfg = str(CONFIGS / "search_lab4_width_digits.toml")
    one_line_error(*run("search", "--config", cfg, "--sampler", "tpee"), "did you mean 'tpe'")
    one_line_error(
        *run("search", "--config", cfg, "--set", "search.strategy.setup.direction=minimize"),
        "with sum_scaled_metrics = true",
    )
    one_line_error(
        *run("search", "--config", cfg, "--set", "search.strategy.metrics.accuracy.direction=up"),
        "must be 'maximize' or 'minimize'",
    )
    one_line_error(
        *run("search", "--config", cfg, "--set", 'search.search_space.name="graph/width/channel_multiplyer"'),
        "did you mean 'graph/width/channel_multiplier'",
    )
    one_line_error(
        *run("search", "--config", cfg, "--set", "search.search_space.seed.seq_block_4.config.name=['both']"),
        "'seq_block_4' names neither a node nor an op type",
    )
    assert not (in_tmp / "runs").exists()


def test_unreachable_storage_fails_before_any_trial(in_tmp: Path) -> None:
    cfg = str(CONFIGS / "search_lab4_width_digits.toml")
    code, out = run("search", "--config", cfg, "--storage", "sqlite:////nonexistent/dir/study.db")
    one_line_error(code, out, "cannot reach the study storage")
    code, out = run("search", "--config", cfg, "--storage", "postgresql://user:secret@127.0.0.1:9/db")
    one_line_error(code, out, "cannot reach the study storage")
    assert "secret" not in out
    assert not (in_tmp / "runs").exists()


def test_sqlite_storage_and_an_existing_study_name(in_tmp: Path) -> None:
    cfg = str(CONFIGS / "search_lab4_width_digits.toml")
    url = f"sqlite:///{in_tmp / 'studies.db'}"
    args = ("search", "--config", cfg, "--storage", url, "--study-name", "lab4", "--n-trials", "2", "--project", "s")
    code, out = run(*args)
    assert code == 0, out
    assert len(rows(run_dir_of(in_tmp, "s"))) == 2
    one_line_error(*run(*args), "a study named 'lab4' already exists")
    assert len(list((in_tmp / "runs" / "s").iterdir())) == 2  # one run + latest: no second run dir
