"""Plot choices on a hand-written run dir: sum mode with one metric, an infeasible, a reused and a failed trial."""

from __future__ import annotations

import json
from pathlib import Path

from netcarve.report import load_run, render_report
from netcarve.report.plots import history_axes, pareto_axes, pareto_numbers

CONFIG = """model = "jsc-tiny"
dataset = "digits"

[search.search_space]
name = "graph/quantize/mixed_precision_ptq"

[search.strategy.setup]
sampler = "tpe"
n_trials = 4
sum_scaled_metrics = true

[search.constraints.accuracy]
min = 0.5
"""

TRIALS = """number,state,objective,param:a,accuracy,model_size,reused_from,pruned,error
0,COMPLETE,0.9,1,0.9,500,,,
1,COMPLETE,0.4,2,0.4,100,,,
2,COMPLETE,0.9,1,0.9,500,0,,
3,FAIL,,3,,,,,ValueError: loss is nan
4,COMPLETE,0.8,4,0.8,300,,,
"""


def make_run(tmp_path: Path) -> Path:
    (tmp_path / "config.toml").write_text(CONFIG)
    (tmp_path / "trials.csv").write_text(TRIALS)
    best = {
        "directions": ["maximize"],
        "metrics": [{"name": "accuracy", "scale": 1.0, "direction": "maximize"}],
        "sum_scaled_metrics": True,
        "best": [{"number": 0, "user_attrs": {"software_metrics": {"accuracy": 0.9}}}],
    }
    (tmp_path / "best.json").write_text(json.dumps(best))
    return tmp_path


def test_one_metric_is_plotted_against_model_size(tmp_path: Path) -> None:
    """x = model_size (↓, the fallback second axis), y = accuracy. Trial 1 (0.4, 100 B) would be on the front
    but breaks accuracy ≥ 0.5; trial 2 reuses trial 0: the front is trials 0 (0.9, 500) and 4 (0.8, 300)."""
    run = load_run(make_run(tmp_path))
    x, y = pareto_axes(run)
    assert (x.name, x.direction, y.name, y.direction) == ("model_size", "minimize", "accuracy", "maximize")
    assert [t.feasible for t in run.trials] == [True, False, True, True, True]
    assert pareto_numbers(run) == [0, 4]
    assert [a.name for a in history_axes(run)] == ["objective"]


def test_classes_and_marks(tmp_path: Path) -> None:
    text = render_report(load_run(make_run(tmp_path)))
    assert text.count('<circle class="trial infeasible"') == 1
    assert text.count('<circle class="trial reused"') == 1
    assert text.count('<circle class="trial pareto"') == 2
    assert text.count('<path class="mark failed"') == 1
    assert "objective (Σ sign·scale·metric)  ↑ better" in text
    assert "ValueError: loss is nan" in text and "accuracy ∈ [0.5, ∞]" in text
    assert "n_trials 4" in text and "sampler tpe" in text
