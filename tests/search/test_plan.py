"""Strategy validation (before any trial) and the objective's direction handling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netcarve.errors import ConfigError
from netcarve.search.objective import objective_values, violations
from netcarve.search.plan import make_plan, target_trials
from netcarve.search.spaces import build_space
from netcarve.train.checkpoint import build_graph
from tests.search.helpers import config, search_dict


def plan_of(tmp_path: Path, **kw: Any):  # type: ignore[no-untyped-def]
    return make_plan(config(search_dict(tmp_path, **kw)))


@pytest.mark.parametrize("name", ["brute_force", "bruteforce", "brute-force", "Brute-Force", "BRUTE_FORCE"])
def test_sampler_names_ignore_case_dash_and_underscore(tmp_path: Path, name: str) -> None:
    assert plan_of(tmp_path, sampler=name).sampler == "brute_force"


def test_unknown_sampler_suggests(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"search\.strategy\.setup\.sampler: unknown sampler 'tpee'; did you mean 'tpe'"
    ):
        plan_of(tmp_path, sampler="tpee")


def test_unknown_metric_and_constraint_metric_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"search\.strategy\.metrics\.acuracy: unknown metric .*did you mean 'accuracy'"
    ):
        plan_of(tmp_path, metrics={"acuracy": {"direction": "maximize"}})
    data = search_dict(tmp_path)
    data["search"]["constraints"] = {"modelsize": {"max": 10}}
    with pytest.raises(ConfigError, match=r"search\.constraints\.modelsize: unknown metric .*'model_size'"):
        make_plan(config(data))


def test_metric_direction_must_be_maximize_or_minimize(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.loss\.direction must be 'maximize' or 'minimize', got 'minimise'"):
        plan_of(tmp_path, metrics={"loss": {"direction": "minimise"}})


def test_minimize_with_sum_scaled_metrics_explains_why(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"setup\.direction = 'minimize' with sum_scaled_metrics = true: the study maximises"
    ):
        plan_of(tmp_path, direction="minimize", sum_scaled_metrics=True)
    assert plan_of(tmp_path, direction="minimize", sum_scaled_metrics=False).directions == ["maximize"]


def test_unknown_runner_is_a_config_error_with_suggestion(tmp_path: Path) -> None:
    data = search_dict(tmp_path)
    data["search"]["strategy"]["sw_runner"]["basic_evalution"] = {}
    with pytest.raises(
        ConfigError,
        match=r"unknown key 'search\.strategy\.sw_runner\.basic_evalution'; did you mean 'basic_evaluation'",
    ):
        config(data)


def test_sum_mode_objective_is_signed_and_scaled(tmp_path: Path) -> None:
    """accuracy (maximize, ×1) and model_size (minimize, ×0.001): 0.8 − 0.001·500 = 0.3."""
    metrics = {
        "accuracy": {"scale": 1.0, "direction": "maximize"},
        "model_size": {"scale": 0.001, "direction": "minimize"},
    }
    plan = plan_of(tmp_path, metrics=metrics)
    assert [m.sign for m in plan.metrics] == [1, -1]
    assert objective_values(plan, {"accuracy": 0.8, "model_size": 500.0, "loss": 1.0}) == pytest.approx([0.3])
    multi = plan_of(tmp_path, metrics=metrics, sum_scaled_metrics=False)
    assert multi.directions == ["maximize", "minimize"]
    assert objective_values(multi, {"accuracy": 0.8, "model_size": 500.0}) == [0.8, 500.0]


def test_constraint_violations_follow_optunas_convention(tmp_path: Path) -> None:
    data = search_dict(tmp_path)
    data["search"]["constraints"] = {"model_size": {"max": 512}, "accuracy": {"min": 0.5}}
    plan = make_plan(config(data))
    assert [c.architecture for c in plan.constraints] == [True, False]
    assert violations(plan, {"model_size": 600.0, "accuracy": 0.7}) == pytest.approx(
        {"model_size": 88.0, "accuracy": -0.2}
    )
    assert plan.constraints[0].reason(600.0) == "model_size = 600 > max 512"


def test_brute_force_over_a_huge_space_without_n_trials_states_its_size(tmp_path: Path, jsc_info) -> None:  # type: ignore[no-untyped-def]
    widths = list(range(1, 11))
    seed = {f"seq_blocks_{i}": {"config": {"name": ["integer"], "weight_width": widths, "data_in_width": widths}}
            for i in (2, 5, 8)}  # fmt: skip
    plan = plan_of(tmp_path, space="graph/quantize/mixed_precision_ptq", seed=seed, model="jsc-toy")
    space = build_space(plan.space, build_graph("jsc-toy", jsc_info))
    with pytest.raises(ConfigError, match=r"brute force over 1,000,000 configurations"):
        target_trials(plan, space)
    limited = plan_of(tmp_path, space="graph/quantize/mixed_precision_ptq", seed=seed, model="jsc-toy", n_trials=50)
    assert target_trials(limited, space) == 50
