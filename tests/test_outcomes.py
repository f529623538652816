"""netcarve.outcomes: dominance, best points, violations and labels on hand-made data (goldens derived here)."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass

import pytest

from netcarve.outcomes import (
    BEST_COLUMNS,
    best,
    best_so_far,
    best_value,
    constraint_label,
    constraints_label,
    dominates,
    feasible,
    is_objective_column,
    non_dominated,
    objective_column,
    objective_columns,
    objective_label,
    objective_of_column,
    sum_objective_name,
    violation,
    violation_reason,
    violations,
)

MAX, MIN = "maximize", "minimize"


@dataclass(frozen=True)
class B:
    metric: str
    min: float | None
    max: float | None


@dataclass(frozen=True)
class M:
    name: str
    direction: str
    scale: float


def test_front_for_accuracy_up_and_size_down() -> None:
    """(accuracy ↑, size ↓): (0.9, 300) and (0.8, 100) trade off; (0.7, 200) is beaten by (0.8, 100) in both;
    (0.9, 400) is beaten by (0.9, 300) (equal accuracy, smaller); (0.5, 50) is the smallest, so it stays."""
    points = [(0.9, 300), (0.8, 100), (0.7, 200), (0.9, 400), (0.5, 50)]
    assert non_dominated(points, (MAX, MIN)) == [0, 1, 4]


def test_front_for_min_min() -> None:
    """(1,3), (2,2), (3,1) form a front; (2,3) is dominated by (2,2) and by (1,3); (4,4) by all."""
    points = [(2, 3), (1, 3), (4, 4), (2, 2), (3, 1)]
    assert non_dominated(points, (MIN, MIN)) == [1, 3, 4]


def test_ties_and_duplicates_are_all_kept() -> None:
    """Equal points do not dominate each other: both copies of (1, 1) stay; (1, 2) is dominated by (1, 1)
    (tie in x, worse in y); with maximize-maximize (1, 2) is the single best."""
    points = [(1, 1), (1, 2), (1, 1)]
    assert non_dominated(points, (MIN, MIN)) == [0, 2]
    assert non_dominated(points, (MAX, MAX)) == [1]
    assert not dominates((1, 1), (1, 1), (MIN, MIN))
    assert dominates((1, 1), (1, 2), (MIN, MIN))


def test_single_objective_front_is_the_best_value_and_its_ties() -> None:
    assert non_dominated([(3,), (5,), (5,), (1,)], (MAX,)) == [1, 2]
    assert non_dominated([(3,), (5,), (5,), (1,)], (MIN,)) == [3]


def test_bad_direction_is_rejected() -> None:
    with pytest.raises(ValueError, match="maximise"):
        non_dominated([(1, 2)], ("maximize", "maximise"))


def test_best_so_far_respects_direction_and_gaps() -> None:
    values = [None, 0.5, None, 0.4, 0.7, 0.6]
    assert best_so_far(values, MAX) == [None, 0.5, 0.5, 0.5, 0.7, 0.7]
    assert best_so_far(values, MIN) == [None, 0.5, 0.5, 0.4, 0.4, 0.4]


def test_best_of_one_objective_keeps_every_tie_and_of_several_is_the_front() -> None:
    """(3,), (5,), (5,), (1,): maximising, both 5s; minimising, the 1. Two objectives: the same as the front.
    No points: nothing."""
    assert best([(3,), (5,), (5,), (1,)], (MAX,)) == [1, 2]
    assert best([(3,), (5,), (5,), (1,)], (MIN,)) == [3]
    points = [(0.9, 300), (0.8, 100), (0.7, 200), (0.9, 400), (0.5, 50)]
    assert best(points, (MAX, MIN)) == non_dominated(points, (MAX, MIN)) == [0, 1, 4]
    assert best([], (MAX, MIN)) == []


def test_best_of_five_trials_after_a_size_constraint() -> None:
    """(accuracy ↑, model_size ↓) with model_size ≤ 250: (0.9, 300) and (0.9, 400) are infeasible (violations
    50 and 150); of the rest (0.8, 100), (0.7, 200), (0.5, 50), (0.7, 200) is dominated by (0.8, 100), so the
    best are trials 1 and 4 — while without the constraint (0.9, 300) would have been on the front."""
    trials = [(0.9, 300.0), (0.8, 100.0), (0.7, 200.0), (0.9, 400.0), (0.5, 50.0)]
    bound = B("model_size", None, 250.0)
    viol = [violations([bound], {"accuracy": a, "model_size": s}) for a, s in trials]
    assert [v["model_size"] for v in viol] == [50.0, -150.0, -50.0, 150.0, -200.0]
    ok = [i for i, v in enumerate(viol) if feasible(v.values())]
    assert ok == [1, 2, 4]
    assert [ok[i] for i in best([trials[i] for i in ok], (MAX, MIN))] == [1, 4]


def test_violation_is_the_distance_outside_the_bounds() -> None:
    """max(min − v, v − max): 600 against max 512 → 88; 0.4 against min 0.5 → 0.1; 5 inside [0, 10] → −5 (the
    nearer bound is 5 away); no bound → −inf (always satisfied)."""
    assert violation(600.0, None, 512.0) == 88.0
    assert violation(0.4, 0.5, None) == pytest.approx(0.1)
    assert violation(5.0, 0.0, 10.0) == -5.0
    assert violation(7.0, None, None) == -math.inf


@pytest.mark.parametrize("value", [-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize(("low", "high"), [(0.0, 2.0), (None, 1.0), (1.0, None), (1.0, 1.0)])
def test_feasible_is_exactly_within_the_bounds(value: float, low: float | None, high: float | None) -> None:
    inside = (low is None or value >= low) and (high is None or value <= high)
    assert feasible([violation(value, low, high)]) is inside


def test_an_unmeasured_metric_counts_as_satisfied() -> None:
    bounds = [B("latency", None, 1.0), B("accuracy", 0.9, None)]
    assert violations(bounds, {"accuracy": 0.8}) == {"latency": 0.0, "accuracy": pytest.approx(0.1)}
    assert feasible(violations(bounds, {"accuracy": 0.95}).values())
    assert feasible([])


def test_violation_reason_names_the_broken_bound() -> None:
    assert violation_reason("model_size", 600.0, None, 512.0) == "model_size = 600 > max 512"
    assert violation_reason("accuracy", 0.4, 0.5, None) == "accuracy = 0.4 < min 0.5"


def test_running_best_value() -> None:
    assert best_value([3.0, 7.0, 5.0], MAX) == 7.0
    assert best_value([3.0, 7.0, 5.0], MIN) == 3.0


def test_labels() -> None:
    assert constraint_label(B("model_size", None, 512.0)) == "model_size ∈ [-∞, 512]"
    assert constraint_label(B("accuracy", 0.5, None)) == "accuracy ∈ [0.5, ∞]"
    assert constraints_label([]) == "none"
    acc, size = M("accuracy", MAX, 1.0), M("model_size", MIN, 0.001)
    assert objective_label(False, [acc, size]) == (
        "Pareto front (multi-objective): accuracy (maximize, scale 1), model_size (minimize, scale 0.001)"
    )
    assert objective_label(False, [acc]) == "single objective: accuracy (maximize, scale 1)"
    assert objective_label(True, [acc, size]).startswith("maximise Σ sign·scale·metric: accuracy")
    assert sum_objective_name([acc, size]) == "score = accuracy − 0.001·model_size"
    assert sum_objective_name([size, acc]) == "score = −0.001·model_size + accuracy"
    assert BEST_COLUMNS[0] == "number"


def test_objective_columns_round_trip() -> None:
    assert objective_columns(True, ["accuracy", "model_size"]) == ["objective"]
    columns = objective_columns(False, ["accuracy", "model_size"])
    assert columns == ["objective_accuracy", "objective_model_size"]
    assert all(is_objective_column(c) for c in columns) and not is_objective_column("param:x")
    assert [objective_of_column(c) for c in [*columns, "objective"]] == ["accuracy", "model_size", "objective"]
    assert objective_column("objective") == "objective"


def test_outcomes_imports_neither_torch_nor_optuna() -> None:
    code = "import netcarve.outcomes, sys; assert 'torch' not in sys.modules and 'optuna' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
