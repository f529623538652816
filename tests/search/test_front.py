"""The design of a learned trial: the member of its front that meets the constraints and is best by the
objective (``netcarve.search.front.choose``), derived by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netcarve.search.front import FrontDesign, choose
from netcarve.search.plan import SearchPlan, make_plan
from tests.search.helpers import config, search_dict

#: three members (epoch, ebops, accuracy, fpga_luts): more accurate costs more
FRONT = (
    FrontDesign(7, 100.0, {"accuracy": 0.80, "fpga_luts": 1000.0, "ebops": 100.0}),
    FrontDesign(5, 200.0, {"accuracy": 0.90, "fpga_luts": 2500.0, "ebops": 200.0}),
    FrontDesign(3, 400.0, {"accuracy": 0.95, "fpga_luts": 4000.0, "ebops": 400.0}),
)


def plan(
    tmp_path: Path, metrics: dict[str, Any], constraints: dict[str, Any] | None = None, **setup: Any
) -> SearchPlan:
    data = search_dict(tmp_path, metrics=metrics, **setup)
    data["search"]["constraints"] = constraints or {}
    return make_plan(config(data))


def test_sum_mode_takes_the_largest_objective(tmp_path: Path) -> None:
    """accuracy − 1e-4 · fpga_luts: 0.80 − 0.10 = 0.70, 0.90 − 0.25 = 0.65, 0.95 − 0.40 = 0.55 → epoch 7; with
    scale 2e-5 instead: 0.78, 0.85, 0.87 → epoch 3."""
    cheap = {"accuracy": {"direction": "maximize"}, "fpga_luts": {"scale": 1e-4, "direction": "minimize"}}
    assert choose(plan(tmp_path, cheap), FRONT) == 0
    accurate = {"accuracy": {"direction": "maximize"}, "fpga_luts": {"scale": 2e-5, "direction": "minimize"}}
    assert choose(plan(tmp_path, accurate), FRONT) == 2


def test_a_bound_is_met_first_then_the_objective(tmp_path: Path) -> None:
    """fpga_luts ≤ 3000 leaves epochs 7 and 5; accuracy alone then takes epoch 5 (0.90). accuracy ≥ 0.85 with
    the cheap sum objective (epoch 7 best overall, 0.70) leaves epochs 5 and 3: epoch 5 (0.65 > 0.55)."""
    accuracy = {"accuracy": {"direction": "maximize"}}
    assert choose(plan(tmp_path, accuracy, {"fpga_luts": {"max": 3000}}), FRONT) == 1
    cheap = {"accuracy": {"direction": "maximize"}, "fpga_luts": {"scale": 1e-4, "direction": "minimize"}}
    assert choose(plan(tmp_path, cheap, {"accuracy": {"min": 0.85}}), FRONT) == 1


def test_when_no_member_meets_the_bounds_the_least_violation_wins(tmp_path: Path) -> None:
    """fpga_luts ≤ 500: violations 500, 2000, 3500 → epoch 7 (then the trial is infeasible, as recorded by its
    constraints)."""
    accuracy = {"accuracy": {"direction": "maximize"}}
    assert choose(plan(tmp_path, accuracy, {"fpga_luts": {"max": 500}}), FRONT) == 0


def test_pareto_compares_the_objectives_in_config_order(tmp_path: Path) -> None:
    """Pareto (sum_scaled_metrics = false): fpga_luts first (minimised) → epoch 7; accuracy first → epoch 3."""
    luts_first = {"fpga_luts": {"direction": "minimize"}, "accuracy": {"direction": "maximize"}}
    assert choose(plan(tmp_path, luts_first, sum_scaled_metrics=False, sampler="nsgaii"), FRONT) == 0
    accuracy_first = {"accuracy": {"direction": "maximize"}, "fpga_luts": {"direction": "minimize"}}
    assert choose(plan(tmp_path, accuracy_first, sum_scaled_metrics=False, sampler="nsgaii"), FRONT) == 2


def test_ties_go_to_fewer_ebops_then_the_later_epoch_and_pruned_members_never_win(tmp_path: Path) -> None:
    """Equal accuracy 0.9: ebops 50 beats 60; equal ebops too: epoch 9 beats 4. A pruned member (not exportable)
    is never chosen even when it is the most accurate; all pruned → None."""
    accuracy = {"accuracy": {"direction": "maximize"}}
    p = plan(tmp_path, accuracy)
    tied = (FrontDesign(4, 60.0, {"accuracy": 0.9}), FrontDesign(2, 50.0, {"accuracy": 0.9}))
    assert choose(p, tied) == 1
    same = (FrontDesign(4, 50.0, {"accuracy": 0.9}), FrontDesign(9, 50.0, {"accuracy": 0.9}))
    assert choose(p, same) == 1
    pruned = (FrontDesign(1, 10.0, {"accuracy": 0.99}, pruned="no"), FrontDesign(2, 50.0, {"accuracy": 0.5}))
    assert choose(p, pruned) == 1
    assert choose(p, pruned[:1]) is None
