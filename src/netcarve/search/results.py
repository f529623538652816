"""Results of a study: the best trial(s) and the run-dir files trials.csv, log.json, best.json, best.pt.

Best trials are COMPLETE, feasible (every constraint satisfied) and not reused copies: in sum mode the
trial(s) with the highest objective; otherwise the Pareto front, each metric in its own direction. The
files are regenerated from the study at the end of every session (also after --resume).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netcarve import outcomes
from netcarve.metrics import ALWAYS_SHOWN, split_groups, table_order
from netcarve.paths import write_json
from netcarve.search.objective import is_feasible
from netcarve.search.plan import SearchPlan
from netcarve.search.record import TrialRecord, is_reused

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)


def candidates(study: optuna.Study) -> list[FrozenTrial]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in trials if is_feasible(t) and not is_reused(t)]


def best_trials(study: optuna.Study, plan: SearchPlan) -> list[FrozenTrial]:
    """The best feasible trials (ties and Pareto-optimal trials all included), by trial number."""
    trials = candidates(study)
    return [trials[i] for i in outcomes.best([t.values for t in trials], plan.directions)]


def best_text(study: optuna.Study, plan: SearchPlan) -> str:
    best = best_trials(study, plan)
    if not best:
        return "best: -"
    if plan.sum_scaled:
        return f"best: {best[0].values[0]:.4g} (trial {best[0].number})"
    return f"Pareto front: {len(best)} trial(s)"


def trial_row(trial: FrozenTrial, plan: SearchPlan, metrics: Sequence[str]) -> dict[str, Any]:
    """A trials.csv row. Only a COMPLETE trial has objective values: Optuna keeps a pruned trial's last
    reported value (a validation accuracy, which its ``pruned`` reason states) as its value."""
    from optuna.trial import TrialState

    record = TrialRecord.of(trial)
    values = (trial.values or []) if trial.state == TrialState.COMPLETE else []
    names = outcomes.objective_columns(plan.sum_scaled, (m.name for m in plan.metrics))
    row: dict[str, Any] = dict(zip(outcomes.TRIAL_KEYS, (trial.number, trial.state.name), strict=True))
    row.update({n: values[i] if i < len(values) else "" for i, n in enumerate(names)})
    row.update({f"{outcomes.PARAM_PREFIX}{k}": v for k, v in trial.params.items()})
    row.update({m: record.metrics.get(m, "") for m in metrics})
    cells = record.attrs()
    row.update({key: cells.get(key, "") for key in outcomes.BOOKKEEPING_ATTRS})
    return row


def metric_groups(record: TrialRecord, plan: SearchPlan) -> dict[str, dict[str, float]]:
    """MASE's groups of a trial's metrics (best.json, the CLI's best table): software, hardware (those the plan
    optimises or bounds, and :data:`~netcarve.metrics.ALWAYS_SHOWN`) and scaled (the objective terms)."""
    software, hardware = split_groups(record.metrics)
    shown = {m.name for m in plan.metrics} | {c.metric for c in plan.constraints} | set(ALWAYS_SHOWN)
    return {
        "software_metrics": software,
        "hardware_metrics": {k: v for k, v in hardware.items() if k in shown},
        "scaled_metrics": dict(record.scaled_metrics),
    }


def internal_errors(study: optuna.Study) -> list[int]:
    """Numbers of the trials that failed with an internal error (a bug in netcarve, not a bad candidate)."""
    from optuna.trial import TrialState

    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return [t.number for t in failed if TrialRecord.of(t).internal_error]


def report_internal_errors(study: optuna.Study) -> list[int]:
    """Log, loudly, the trials that failed with an internal error; returns their numbers."""
    numbers = internal_errors(study)
    if numbers:
        log.error(
            "trial(s) %s failed with an internal error: this is a bug in netcarve, not a bad candidate; please "
            "report it with the trial's traceback (user attribute 'traceback'; the 'log' column of trials.csv)",
            ", ".join(map(str, numbers)),
        )
    return numbers


def write_trials_csv(path: Path, study: optuna.Study, plan: SearchPlan) -> None:
    trials = study.get_trials(deepcopy=False)
    metrics = table_order(k for t in trials for k in TrialRecord.of(t).metrics)
    rows = [trial_row(t, plan, metrics) for t in trials]
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


def trial_record(trial: FrozenTrial, plan: SearchPlan | None = None) -> dict[str, Any]:
    """A trial as log.json and best.json list it: its ``metrics`` (each once; with ``plan``, best.json, also
    their MASE groups) and its ``user_attrs`` as stored."""
    record = TrialRecord.of(trial)
    groups = metric_groups(record, plan) if plan is not None else {}
    return {
        "number": trial.number,
        "state": trial.state.name,
        "values": trial.values,
        "params": trial.params,
        "metrics": dict(record.metrics),
        **groups,
        "user_attrs": trial.user_attrs,
        "datetime_start": trial.datetime_start.isoformat() if trial.datetime_start else None,
        "datetime_complete": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
    }


def write_results(run_dir: Path, study: optuna.Study, plan: SearchPlan, finished: bool) -> list[FrozenTrial]:
    """trials.csv, log.json and best.json in ``run_dir`` (``finished``: whether the search ran to its end, not
    interrupted); returns the best trials. Trials that failed with an internal error are logged as an error."""
    report_internal_errors(study)
    write_trials_csv(run_dir / "trials.csv", study, plan)
    write_json(run_dir / "log.json", [trial_record(t) for t in study.get_trials(deepcopy=False)])
    best = best_trials(study, plan)
    write_json(run_dir / "best.json", {
        "directions": plan.directions,
        "metrics": [{"name": m.name, "scale": m.scale, "direction": m.direction} for m in plan.metrics],
        "sum_scaled_metrics": plan.sum_scaled,
        "best": [trial_record(t, plan) for t in best],
        "checkpoint": "best.pt" if best else None,
        "finished": finished,
    })  # fmt: skip
    return best
