"""One trial, driven by ask/tell: suggest → reuse or evaluate → record user attributes → tell.

Recorded on every trial (user attributes): ``config_key`` (digest of the candidate's transforms),
``worker``, ``transforms``, ``software_metrics``, ``hardware_metrics``, ``scaled_metrics`` (scale·metric of
each objective metric, as MASE showed them), ``train_steps``,
``duration_s``; ``reused_from`` on a trial that reused an earlier result;
one Optuna constraint per ``[search.constraints]`` entry (``trial.set_constraint(metric, violation)``,
≤ 0 feasible: the samplers that handle constraints — TPE, NSGA-II/III, GP — read them from the trial;
Optuna 5 deprecates ``constraints_func`` for this); ``pruned`` with the reason on a
trial pruned by an architecture constraint; ``error`` on a failed one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netcarve.errors import NetcarveError, SearchError
from netcarve.search.brute_force import STALE_ATTR
from netcarve.search.candidate import CandidateEvaluator, Outcome
from netcarve.search.metrics import ALWAYS_SHOWN, split_groups
from netcarve.search.plan import SearchPlan
from netcarve.search.spaces import SearchSpace, transforms_key

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

#: attributes a reused trial copies from the trial it reuses
COPIED_ATTRS = ("transforms", "software_metrics", "hardware_metrics", "scaled_metrics", "pruned")


def trial_checkpoint(directory: Path, number: int) -> Path:
    return directory / f"trial-{number}.pt"


def worker_id() -> str:
    return f"{platform.node()}:{os.getpid()}"


def config_digest(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def objective_values(plan: SearchPlan, metrics: Mapping[str, float]) -> list[float]:
    """Σ sign·scale·metric (sum mode, maximised) or one value per metric in config order."""
    if plan.sum_scaled:
        return [math.fsum(m.sign * m.scale * metrics[m.name] for m in plan.metrics)]
    return [metrics[m.name] for m in plan.metrics]


def violations(plan: SearchPlan, metrics: Mapping[str, float]) -> dict[str, float]:
    """Each constraint's violation (≤ 0: satisfied); a metric not measured (trial pruned early) counts 0."""
    return {c.metric: c.violation(metrics[c.metric]) if c.metric in metrics else 0.0 for c in plan.constraints}


def is_feasible(trial: FrozenTrial) -> bool:
    """Every constraint satisfied (Optuna's ``trial.constraints``, read by TPE, NSGA-II/III and GP too)."""
    return all(v <= 0 for v in trial.constraints.values())


def set_constraints(trial: optuna.Trial, values: Mapping[str, float]) -> None:
    for key, value in values.items():
        trial.set_constraint(key, value)


@dataclass
class TrialRunner:
    """Runs trials of one study in this process."""

    study: optuna.Study
    plan: SearchPlan
    space: SearchSpace
    evaluator: CandidateEvaluator
    checkpoints: Path | None = None  # retrained candidates are saved here as trial-<number>.pt

    def run(self, trial: optuna.Trial) -> None:
        start = time.perf_counter()
        trial.set_user_attr("worker", worker_id())
        try:
            self._run(trial, start)
        except (NetcarveError, RuntimeError, ValueError) as exc:  # a bad candidate: the study goes on
            self._fail(trial, f"{type(exc).__name__}: {exc}", start)
        except Exception as exc:  # a bug: recorded, then raised
            self._fail(trial, f"{type(exc).__name__}: {exc}", start)
            raise
        except BaseException:  # interrupted: redone on resume
            self._fail(trial, "interrupted", start, stale=True)
            raise

    def _run(self, trial: optuna.Trial, start: float) -> None:
        transforms = self.space.transforms(self.space.suggest(trial))
        digest = config_digest(transforms_key(transforms))
        trial.set_user_attr("config_key", digest)
        source = self._done_with(digest, trial.number)
        if source is not None:
            return self._reuse(trial, source, start)
        trial.set_user_attr("transforms", [[name, cfg] for name, cfg in transforms])
        outcome = self.evaluator.evaluate(transforms)
        self._record(trial, outcome, start)

    def _done_with(self, digest: str, number: int) -> FrozenTrial | None:
        from optuna.trial import TrialState

        for other in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if other.number != number and other.user_attrs.get("config_key") == digest:
                return other
        return None

    def _record(self, trial: optuna.Trial, outcome: Outcome, start: float) -> None:
        from optuna.trial import TrialState

        software, hardware = split_groups(outcome.metrics)
        shown = {m.name for m in self.plan.metrics} | {c.metric for c in self.plan.constraints} | set(ALWAYS_SHOWN)
        trial.set_user_attr("software_metrics", software)
        trial.set_user_attr("hardware_metrics", {k: v for k, v in hardware.items() if k in shown})
        trial.set_user_attr("metrics", outcome.metrics)
        set_constraints(trial, violations(self.plan, outcome.metrics))
        trial.set_user_attr("train_steps", outcome.train_steps)
        if outcome.pruned is not None:
            trial.set_user_attr("pruned", outcome.pruned)
            trial.set_user_attr("duration_s", time.perf_counter() - start)
            self.study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d pruned: %s", trial.number, outcome.pruned)
            return
        values = objective_values(self.plan, outcome.metrics)
        if not all(math.isfinite(v) for v in values):
            raise SearchError(f"objective value is not finite: {values}")
        trial.set_user_attr("scaled_metrics", {m.name: m.scale * outcome.metrics[m.name] for m in self.plan.metrics})
        self._save(trial.number, outcome)
        trial.set_user_attr("duration_s", time.perf_counter() - start)
        self.study.tell(trial, values)
        log.debug("trial %d: %s", trial.number, values)

    def _save(self, number: int, outcome: Outcome) -> None:
        if self.checkpoints is None or outcome.graph is None or outcome.train_steps == 0:
            return
        from netcarve.train.checkpoint import save_checkpoint

        meta = {"trial": number, "metrics": outcome.metrics}
        save_checkpoint(trial_checkpoint(self.checkpoints, number), outcome.graph, meta, overwrite=True)

    def _reuse(self, trial: optuna.Trial, source: FrozenTrial, start: float) -> None:
        from optuna.trial import TrialState

        origin = int(source.user_attrs.get("reused_from", source.number))
        for key in ("metrics", "train_steps", *COPIED_ATTRS):
            if key in source.user_attrs:
                trial.set_user_attr(key, source.user_attrs[key])
        set_constraints(trial, source.constraints)
        trial.set_user_attr("reused_from", origin)
        trial.set_user_attr("duration_s", time.perf_counter() - start)
        if source.state == TrialState.PRUNED:
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, source.values)
        log.debug("trial %d: configuration already evaluated by trial %d, result reused", trial.number, origin)

    def _fail(self, trial: optuna.Trial, message: str, start: float, stale: bool = False) -> None:
        from optuna.trial import TrialState

        try:
            trial.set_user_attr("error", message)
            trial.set_user_attr("duration_s", time.perf_counter() - start)
            if stale:
                trial.set_user_attr(STALE_ATTR, True)
            self.study.tell(trial, state=TrialState.FAIL)
        except Exception as exc:  # the trial may already be finished (e.g. failed during tell)
            log.debug("could not record the failure of trial %d: %s", trial.number, exc)
        if not stale:
            log.warning("trial %d failed: %s", trial.number, message)
