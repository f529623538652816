"""Sampler-comparison maths on hand-made runs: best-so-far and hypervolume curves, summaries (golden values)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from netcarve.compare.curves import RunTrials, compare_runs, stat, threshold, trials_to_reach
from netcarve.compare.output import plus_minus, summary_dict, table_cells, write_csv
from netcarve.compare.run import resolve_samplers
from netcarve.errors import ConfigError

MAX, MIN = "maximize", "minimize"
ROOT = Path("/runs/c")


def single_runs() -> list[RunTrials]:
    """Accuracy (max), 4 trials each; None = pruned/failed/infeasible."""
    return [
        RunTrials("random", 0, ROOT / "random-seed0", ((0.5,), None, (0.7,), (0.6,))),  # best: .5 .5 .7 .7
        RunTrials("random", 1, ROOT / "random-seed1", (None, (0.4,), (0.8,), (0.8,))),  # best: – .4 .8 .8
        RunTrials("brute_force", 0, ROOT / "brute_force-seed0", ((0.2,), (0.9,), (0.1,), (0.3,))),  # .2 .9 .9 .9
    ]


def test_single_objective_curves_and_summary() -> None:
    """n = 4 → after 1 (25 %), 2 (50 %), 4 (100 %) trials.
    random after 1: only seed 0 has a value → 0.5 ± 0 (1 of 2 runs); after 2: (0.5, 0.4) → 0.45 ± 0.0707
    (sample std: √((0.05² + 0.05²)/1)); after 4: (0.7, 0.8) → 0.75 ± 0.0707.
    Best of any run 0.9 → threshold 0.9 − 0.05·0.9 = 0.855: random never reaches it, brute force after 2."""
    c = compare_runs(single_runs(), (MAX,), ("accuracy",), 4)
    assert c.measure == "best objective" and c.reference_point is None
    assert [cv.points for cv in c.curves] == [(0.5, 0.5, 0.7, 0.7), (None, 0.4, 0.8, 0.8), (0.2, 0.9, 0.9, 0.9)]
    assert c.best == 0.9 and c.threshold == pytest.approx(0.855)
    random, brute = c.summary
    assert [(f, k) for f, k, _ in random.at] == [(0.25, 1), (0.5, 2), (1.0, 4)]
    s1, s2, s4 = (st for _, _, st in random.at)
    assert (s1.mean, s1.std, s1.n) == (0.5, 0.0, 1)
    assert s2.mean == pytest.approx(0.45) and s2.std == pytest.approx(math.sqrt(0.005)) and s2.n == 2
    assert s4.mean == pytest.approx(0.75) and s4.std == pytest.approx(math.sqrt(0.005))
    assert random.reached == 0 and random.to_reach.mean is None
    assert brute.reached == 1 and brute.to_reach.mean == 2 and brute.runs == 1
    cells = ["random", "2", "0.5000 ± 0.0000 (1/2 runs)", "0.4500 ± 0.0707", "0.7500 ± 0.0707", "—"]
    assert table_cells(random) == cells
    assert table_cells(brute)[-1] == "2.0"


def test_minimised_objective_and_short_runs() -> None:
    """size (min): best 100; threshold 100 + 5 = 105. A run with 2 of n = 4 trials keeps its last value."""
    runs = [RunTrials("a", 0, ROOT, ((300.0,), (104.0,))), RunTrials("a", 1, ROOT, ((100.0,), (500.0,), (90.0,)))]
    c = compare_runs(runs, (MIN,), ("model_size",), 4)
    assert [cv.points for cv in c.curves] == [(300.0, 104.0), (100.0, 100.0, 90.0)]
    assert c.best == 90.0 and c.threshold == pytest.approx(94.5)
    (summary,) = c.summary
    final = summary.at[-1][2]
    assert final.mean == pytest.approx(97.0)  # (104 + 90) / 2 after 4 trials
    assert summary.reached == 1 and summary.to_reach.mean == 3


def test_hypervolume_curves_share_one_reference_point() -> None:
    """(accuracy ↑, size ↓). All usable points: (0.5,100), (0.8,300), (0.6,200), (0.9,400) → reference
    (0.5 − 0.1·0.4, 400 + 0.1·300) = (0.46, 430).
    Run A: (0.5,100) → 0.04·330 = 13.2; + (0.8,300) → 0.34·130 + 0.04·200 = 52.2; pruned → 52.2;
    + (0.6,200) → 0.34·130 + 0.14·100 + 0.04·100 = 62.2.  Run B: (0.9,400) → 0.44·30 = 13.2."""
    runs = [
        RunTrials("tpe", 0, ROOT, ((0.5, 100.0), (0.8, 300.0), None, (0.6, 200.0))),
        RunTrials("random", 0, ROOT, ((0.9, 400.0),)),
    ]
    c = compare_runs(runs, (MAX, MIN), ("accuracy", "model_size"), 4)
    assert c.measure == "hypervolume" and c.direction == MAX
    assert c.reference_point == pytest.approx((0.46, 430.0))
    assert c.curves[0].points == pytest.approx((13.2, 52.2, 52.2, 62.2))
    assert c.curves[1].points == pytest.approx((13.2,))
    assert c.best == pytest.approx(62.2) and c.threshold == pytest.approx(0.95 * 62.2)
    assert [s.reached for s in c.summary] == [1, 0]


def test_no_usable_trial_at_all() -> None:
    c = compare_runs([RunTrials("x", 0, ROOT, (None, None))], (MAX, MIN), ("a", "b"), 2)
    assert c.curves[0].points == (0.0, 0.0) and c.reference_point is None
    c1 = compare_runs([RunTrials("x", 0, ROOT, (None, None))], (MAX,), ("a",), 2)
    assert c1.curves[0].points == (None, None) and c1.best is None and c1.summary[0].to_reach.n == 0


def test_helpers() -> None:
    assert threshold(-2.0, MAX) == pytest.approx(-2.1) and threshold(-2.0, MIN) == pytest.approx(-1.9)
    assert trials_to_reach([None, 0.3, 0.9], 0.9, MAX) == 3 and trials_to_reach([0.1], 0.9, MAX) is None
    assert stat([None, 1.0, 3.0]).std == pytest.approx(math.sqrt(2.0)) and stat([]).mean is None
    assert plus_minus(993.349, 240.85) == "993.3 ± 240.8" and plus_minus(0.0, 0.0) == "0.000 ± 0.000"


def test_csv_and_json(tmp_path: Path) -> None:
    c = compare_runs(single_runs(), (MAX,), ("accuracy",), 4)
    write_csv(tmp_path / "compare.csv", c)
    rows = list(csv.DictReader((tmp_path / "compare.csv").open()))
    assert len(rows) == 12 and rows[4] == {"sampler": "random", "seed": "1", "trial": "1", "best_so_far": ""}
    data = summary_dict(c, ROOT)
    assert data["runs"][2] == {"sampler": "brute_force", "seed": 0, "run_dir": "brute_force-seed0", "trials": 4,
                               "final": 0.9, "trials_to_reach": 2}  # fmt: skip
    assert data["summary"]["random"]["after"]["50%"]["trials"] == 2


def test_sampler_names_resolve_with_suggestions() -> None:
    assert resolve_samplers(["TPE", "random", "brute-force", "bruteforce"]) == ["tpe", "random", "brute_force"]
    with pytest.raises(ConfigError, match=r"unknown sampler 'tpee'; did you mean 'tpe'"):
        resolve_samplers(["tpee"])
