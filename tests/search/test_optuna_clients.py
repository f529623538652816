"""Issue 9 item 11: plain Optuna clients (optuna-dashboard, optuna.load_study) see real names: the study's
metric names, each metric as a flat ``metric.<name>`` user attribute, and scaled_metrics that add up to the
objective value in sum mode."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest

from netcarve.search.plan import make_plan, objective_names
from netcarve.search.session import Session
from tests.search.helpers import config, run_search, search_dict

QUANT = "graph/quantize/mixed_precision_ptq"
METRICS = {"accuracy": {"scale": 1.0, "direction": "maximize"}, "model_size": {"scale": 0.001, "direction": "minimize"}}
#: two configurations only: with five trials, some reuse an earlier result
SEED = {
    "default": {"config": {"name": [None]}},
    "seq_blocks_2": {"config": {"name": ["integer"], "weight_width": [4, 8]}},
}


def plain_study(session: Session) -> optuna.Study:
    """The study as plain Optuna opens it from the run dir's journal file (no netcarve code involved)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    assert session.run_dir is not None
    storage = JournalStorage(JournalFileBackend(str(session.run_dir / "study.journal")))
    return optuna.load_study(study_name=session.study.study_name, storage=storage)


def small_search(tmp_path: Path, **setup: Any) -> Session:
    data = search_dict(tmp_path, space=QUANT, seed=SEED, model="jsc-toy", sampler="random", n_trials=5,
                       eval_mode=True, metrics=METRICS, **setup)  # fmt: skip
    return run_search(config(data))


def flat(t: optuna.trial.FrozenTrial) -> dict[str, float]:
    return {k.removeprefix("metric."): v for k, v in t.user_attrs.items() if k.startswith("metric.")}


def check_flat_metrics(study: optuna.Study) -> None:
    """Each metric is stored once, flat (no ``metrics`` dict or software/hardware groups repeating it), and the
    trial record reads exactly those."""
    from netcarve.search.record import TrialRecord

    finished = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 5 and any("reused_from" in t.user_attrs for t in finished)
    for t in finished:
        assert {"accuracy", "model_size", "bitops"} <= set(flat(t))
        assert not {"metrics", "software_metrics", "hardware_metrics"} & set(t.user_attrs)
        assert TrialRecord.of(t).metrics == flat(t)


def test_a_pareto_study_names_its_objectives_and_flattens_its_metrics(tmp_path: Path) -> None:
    study = plain_study(small_search(tmp_path, sum_scaled_metrics=False))
    assert study.metric_names == ["accuracy", "model_size"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    check_flat_metrics(study)
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        m = flat(t)
        assert t.values == [m["accuracy"], m["model_size"]]
        assert t.user_attrs["scaled_metrics"] == pytest.approx(
            {"accuracy": m["accuracy"], "model_size": 0.001 * m["model_size"]}
        )


def test_a_sum_study_names_its_score_and_its_scaled_metrics_add_up_to_the_value(tmp_path: Path) -> None:
    study = plain_study(small_search(tmp_path, sum_scaled_metrics=True))
    assert study.metric_names == ["score = accuracy − 0.001·model_size"]
    check_flat_metrics(study)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert done
    for t in done:
        scaled = t.user_attrs["scaled_metrics"]
        assert scaled["model_size"] < 0  # a minimised metric counts negatively
        assert sum(scaled.values()) == pytest.approx(t.value, rel=1e-12, abs=1e-12)
        assert math.fsum(scaled.values()) == t.value


@pytest.mark.parametrize(
    ("metrics", "name"),
    [
        ({"accuracy": {"direction": "maximize"}}, "score = accuracy"),
        ({"loss": {"scale": 0.5, "direction": "minimize"}, "accuracy": {"scale": 2, "direction": "maximize"}},
         "score = −0.5·loss + 2·accuracy"),
    ],
)  # fmt: skip
def test_sum_mode_name_spells_the_sum(tmp_path: Path, metrics: dict[str, Any], name: str) -> None:
    assert objective_names(make_plan(config(search_dict(tmp_path, metrics=metrics)))) == [name]
