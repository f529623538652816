"""``netcarve compare``: the same search run once per (sampler, seed), then their sample efficiency.

Layout: ``runs/<project>/<time>/`` holds config.toml, manifest.json, compare.csv, compare.json and
compare.html, and one complete search run dir per study, ``<sampler>-seed<k>/`` (with its own report.html).
Every study has the config's space, metrics, constraints and training; only ``setup.sampler``,
``setup.seed`` (the sampler's seed — model initialisation and training keep the config's ``seed``, so equal
configurations score equally in every run) and ``setup.n_trials`` differ. The data are loaded once; an
eval-mode search that trains its base model first does so in the first run only, and the other runs
quantize that run's ``base.pt``.
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from netcarve.compare.curves import Comparison, RunTrials, Values, compare_runs
from netcarve.config.loader import validate_config
from netcarve.config.run import RunConfig, effective_dict
from netcarve.errors import ConfigError, UnknownNameError
from netcarve.search.samplers import SAMPLERS

if TYPE_CHECKING:
    import optuna

    from netcarve.search.session import Prepared, Session


class Listener(Protocol):
    def run_started(self, index: int, total: int, sampler: str, seed: int, target: int | None) -> None: ...

    def trials_done(self, done: int) -> None: ...


class _Silent:
    def run_started(self, index: int, total: int, sampler: str, seed: int, target: int | None) -> None:
        pass

    def trials_done(self, done: int) -> None:
        pass


@dataclass(frozen=True)
class CompareResult:
    run_dir: Path
    comparison: Comparison


def resolve_samplers(names: Sequence[str]) -> list[str]:
    """Registered sampler names (aliases resolved, duplicates dropped); a typo names the close matches."""
    out: list[str] = []
    for name in names:
        try:
            canonical = SAMPLERS.canonical(name.strip())
        except UnknownNameError as exc:
            raise ConfigError(f"--samplers: {exc}") from exc
        if canonical not in out:
            out.append(canonical)
    if not out:
        raise ConfigError("--samplers: name at least one sampler (e.g. tpe,random)")
    return out


def run_config(config: RunConfig, sampler: str, seed: int, n_trials: int, load_name: str | None = None) -> RunConfig:
    data = copy.deepcopy(effective_dict(config))
    setup = data.setdefault("search", {}).setdefault("strategy", {}).setdefault("setup", {})
    setup.update(sampler=sampler, seed=seed, n_trials=n_trials)
    if load_name is not None:
        data["load_name"] = load_name
    options = {f"search.strategy.setup.{k}": f"--{k.replace('_', '-')}s" for k in ("sampler", "seed")}
    return validate_config(data, "compare", {**options, "search.strategy.setup.n_trials": "--n-trials"})


def default_trials(config: RunConfig) -> int:
    from netcarve.search.plan import make_plan

    n = make_plan(config).n_trials
    if n is None:
        raise ConfigError("compare needs a trial budget: pass --n-trials (the config's n_trials is 'NA')")
    return n


def trial_values(study: optuna.Study) -> tuple[Values, ...]:
    """Each finished trial's objective values in trial order (None unless complete and feasible)."""
    from optuna.trial import TrialState

    from netcarve.search.objective import is_feasible

    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    trials = sorted(study.get_trials(deepcopy=False, states=finished), key=lambda t: t.number)
    return tuple(tuple(t.values) if t.state == TrialState.COMPLETE and is_feasible(t) else None for t in trials)


def _prepared(config: RunConfig, first: Prepared | None) -> Prepared:
    from netcarve.search.api import prepare_search
    from netcarve.search.session import prepare
    from netcarve.workflow import initial_graph

    if first is None or first.splits is None:
        return prepare_search(config)
    return prepare(config, first.splits, initial_graph(config, first.splits), checked=first.validity)


def _progress(listener: Listener, session: Session) -> None:
    from netcarve.search.runner import count_trials

    listener.trials_done(count_trials(session.study).done)


def _start(config: RunConfig, samplers: Sequence[str], seeds: Sequence[int], n_trials: int) -> Path:
    from netcarve.runs import create_run_dir, write_run_files
    from netcarve.workflow import project_name

    run_dir = create_run_dir(config.project_dir, project_name(config))
    extra = {"compare": {"samplers": list(samplers), "seeds": list(seeds), "n_trials": n_trials}}
    write_run_files(run_dir, effective_dict(config), "compare", config.seed, extra)
    return run_dir


def run_compare(
    config: RunConfig,
    samplers: Sequence[str],
    seeds: Sequence[int],
    n_trials: int | None = None,
    listener: Listener | None = None,
) -> CompareResult:
    """Run every (sampler, seed) study, then write compare.csv, compare.json and compare.html."""
    from netcarve.compare.output import write_outputs
    from netcarve.search.api import finish, start_search, trains_base_first
    from netcarve.search.runner import run_study

    listener = listener or _Silent()
    samplers = resolve_samplers(samplers)
    if not seeds:
        raise ConfigError("--seeds: give at least one seed (e.g. 0,1,2)")
    n = n_trials if n_trials is not None else default_trials(config)
    from netcarve.search.plan import make_plan

    make_plan(run_config(config, samplers[0], seeds[0], n))  # a bad config fails before anything is written
    root = _start(config, samplers, seeds, n)
    first: Prepared | None = None
    load_name: str | None = None
    runs = []
    pairs = list(itertools.product(samplers, seeds))
    for index, (sampler, seed) in enumerate(pairs):
        prepared = _prepared(run_config(config, sampler, seed, n, load_name), first)
        session = start_search(prepared, None, None, run_dir=root / f"{sampler}-seed{seed}")
        if load_name is None and trains_base_first(prepared):
            load_name = session.prepared.config.load_name
        first = first or prepared
        listener.run_started(index, len(pairs), sampler, seed, session.target)
        plan = prepared.plan
        run_study(session, plan.n_jobs, plan.timeout, functools.partial(_progress, listener, session))
        finish(session)
        runs.append(RunTrials(sampler, seed, session.run_dir or root, trial_values(session.study)))
    assert first is not None
    names = [m.name for m in first.plan.metrics] if not first.plan.sum_scaled else ["objective"]
    comparison = compare_runs(runs, first.plan.directions, names, n)
    write_outputs(root, comparison, config)
    return CompareResult(root, comparison)
