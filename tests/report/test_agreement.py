"""The report and the search apply one rule (netcarve.outcomes): from trials.csv alone, the report's
feasibility and the best of the feasible, non-reused complete trials give exactly the trials in best.json."""

from __future__ import annotations

from pathlib import Path

from netcarve.outcomes import best, constraint_label
from netcarve.report import load_run


def test_best_json_is_the_best_of_the_feasible_trials_read_back(search_run: Path) -> None:
    run = load_run(search_run)
    candidates = [t for t in run.trials if t.complete and t.feasible and t.reused_from is None]
    chosen = [candidates[i].number for i in best([t.objectives for t in candidates], run.directions)]
    assert chosen and chosen == [b.number for b in run.best]


def test_feasible_means_within_the_stored_bounds(search_run: Path) -> None:
    """model_size ≤ 16 000 bytes: every trial the report calls feasible is within it, every other is not."""
    run = load_run(search_run)
    (bound,) = run.constraints
    assert constraint_label(bound) == "model_size ∈ [-∞, 16000]"
    for t in run.trials:
        if "model_size" in t.metrics:
            assert t.feasible is (t.metrics["model_size"] <= 16_000)
