"""The validated search settings (``[search.strategy]``, ``[search.constraints]``) — all checked up front.

Objective (README: Search): with ``sum_scaled_metrics = true`` the study maximises Σ sign·scale·metric, sign = +1
for a metric whose direction is "maximize" and −1 for "minimize"; ``setup.direction`` may then only be
"maximize". Otherwise each metric is its own objective with its own direction, in config order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from netcarve import outcomes
from netcarve.config.run import RunConfig
from netcarve.config.search import SearchConfig, SearchSpaceConfig
from netcarve.errors import ConfigError, UnknownNameError
from netcarve.metrics import METRICS, firmware_metric_names
from netcarve.outcomes import DIRECTIONS, Direction
from netcarve.registry import did_you_mean
from netcarve.search.samplers import SAMPLERS
from netcarve.search.spaces import SearchSpace
from netcarve.train.loop import TrainConfig

log = logging.getLogger(__name__)

#: a brute-force search over more configurations needs an explicit n_trials
MAX_ENUMERATED = 100_000
STRATEGY = "search.strategy"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    scale: float
    direction: Direction

    @property
    def sign(self) -> int:
        return outcomes.sign(self.direction)


@dataclass(frozen=True)
class ConstraintSpec:
    """``[search.constraints] <metric> = {min, max}``; violation ≤ 0 means feasible (Optuna's convention)."""

    metric: str
    min: float | None
    max: float | None
    architecture: bool

    def violation(self, value: float) -> float:
        return outcomes.violation(value, self.min, self.max)

    def reason(self, value: float) -> str:
        return outcomes.violation_reason(self.metric, value, self.min, self.max)


@dataclass(frozen=True)
class SearchPlan:
    space: SearchSpaceConfig
    sampler: str
    metrics: tuple[MetricSpec, ...]
    sum_scaled: bool
    constraints: tuple[ConstraintSpec, ...]
    eval_mode: bool
    train: TrainConfig
    train_split: str
    eval_split: str
    eval_samples: int | None
    n_trials: int | None
    n_trials_given: bool
    n_jobs: int
    timeout: float | None
    seed: int
    compare_to: float
    heartbeat_interval: int = 30
    #: retrained candidates per batched training pass: a count or "auto" (:func:`population_size`)
    population: int | str = 1
    #: a name in :data:`netcarve.search.pruners.PRUNERS`
    pruner: str = "none"

    @property
    def directions(self) -> list[Direction]:
        return ["maximize"] if self.sum_scaled else [m.direction for m in self.metrics]

    @property
    def enumerates(self) -> bool:
        return SAMPLERS.get(self.sampler).enumerates

    @property
    def needs_latency(self) -> bool:
        return any(m.name == "latency" for m in self.metrics) or any(c.metric == "latency" for c in self.constraints)

    @property
    def needs_fpga(self) -> bool:
        """Whether an objective or constraint is a firmware metric (alkaid traces each candidate)."""
        names = set(firmware_metric_names())
        return any(m.name in names for m in self.metrics) or any(c.metric in names for c in self.constraints)

    def retrains(self, space: SearchSpace) -> bool:
        """Candidates are retrained unless eval_mode; width candidates always are (README: Transform)."""
        return not self.eval_mode or space.changes_width


def scaled_metrics(plan: SearchPlan, metrics: Mapping[str, float]) -> dict[str, float]:
    """Each objective metric's term: sign·scale·metric in sum mode (they add up to the objective value),
    scale·metric in a Pareto study (as MASE showed them; its objectives are the metrics themselves)."""
    return {m.name: (m.sign if plan.sum_scaled else 1) * m.scale * metrics[m.name] for m in plan.metrics}


def objective_values(plan: SearchPlan, metrics: Mapping[str, float]) -> list[float]:
    """Σ sign·scale·metric (sum mode, maximised) or one value per metric in config order."""
    if plan.sum_scaled:
        return [math.fsum(scaled_metrics(plan, metrics).values())]
    return [metrics[m.name] for m in plan.metrics]


def objective_names(plan: SearchPlan) -> list[str]:
    """The objectives' names as Optuna shows them (``study.metric_names``): the metric names of a Pareto
    study, in config order; in sum mode one name spelling the sum, e.g. ``score = accuracy − 0.001·model_size``."""
    if not plan.sum_scaled:
        return [m.name for m in plan.metrics]
    return [outcomes.sum_objective_name(plan.metrics)]


def _direction(value: str, key: str) -> Direction:
    text = value.strip().lower()
    for direction in DIRECTIONS:
        if text == direction:
            return direction
    hint = did_you_mean(text, DIRECTIONS)
    raise ConfigError(f"{key} must be 'maximize' or 'minimize', got {value!r}{hint}")


def _metric_name(name: str, key: str) -> str:
    try:
        return METRICS.canonical(name)
    except UnknownNameError as exc:
        raise ConfigError(f"{key}: {exc}") from exc


def _metrics(search: SearchConfig) -> tuple[MetricSpec, ...]:
    table = search.strategy.metrics
    if not table:
        log.info("no [%s.metrics]: optimising accuracy (maximize)", STRATEGY)
        return (MetricSpec("accuracy", 1.0, "maximize"),)
    out = []
    for name, m in table.items():
        key = f"{STRATEGY}.metrics.{name}"
        out.append(MetricSpec(_metric_name(name, key), m.scale, _direction(m.direction, f"{key}.direction")))
    return tuple(out)


def _constraints(search: SearchConfig) -> tuple[ConstraintSpec, ...]:
    out = []
    for name, bound in search.constraints.items():
        key = f"search.constraints.{name}"
        metric = _metric_name(name, key)
        if bound.min is None and bound.max is None:
            raise ConfigError(f"{key} sets neither min nor max")
        if bound.min is not None and bound.max is not None and bound.min > bound.max:
            raise ConfigError(f"{key}: min {bound.min:g} > max {bound.max:g}: no candidate can be feasible")
        out.append(ConstraintSpec(metric, bound.min, bound.max, METRICS.get(metric).architecture_only))
    return tuple(out)


def _sum_direction(search: SearchConfig) -> None:
    setup = search.strategy.setup
    direction = _direction(setup.direction, f"{STRATEGY}.setup.direction")
    if setup.sum_scaled_metrics and direction != "maximize":
        raise ConfigError(
            f"{STRATEGY}.setup.direction = {setup.direction!r} with sum_scaled_metrics = true: the study maximises "
            "Σ sign·scale·metric, where each metric's own direction sets its sign (minimize ⇒ −1); "
            "set the direction on the metrics and leave setup.direction = 'maximize'"
        )
    if not setup.sum_scaled_metrics and direction != "maximize":
        log.warning(
            "%s.setup.direction has no effect with sum_scaled_metrics = false (each metric has its own)", STRATEGY
        )


def _sampler(name: str) -> str:
    try:
        return SAMPLERS.canonical(name)
    except UnknownNameError as exc:
        raise ConfigError(f"{STRATEGY}.setup.sampler: {exc}") from exc


def _pruner(name: str) -> str:
    from netcarve.search.pruners import PRUNERS

    try:
        return PRUNERS.canonical(name)
    except UnknownNameError as exc:
        raise ConfigError(f"{STRATEGY}.setup.pruner: {exc}") from exc


def _train_config(config: RunConfig, search: SearchConfig) -> tuple[TrainConfig, str]:
    from netcarve.config.training import training_settings

    basic = search.strategy.sw_runner.basic_train
    if basic is None:
        return training_settings(config), "train"
    return training_settings(basic), basic.data_loader  # an unset seed is the top-level one (RunConfig)


def make_plan(config: RunConfig) -> SearchPlan:
    """Validate ``[search]`` of ``config`` (names, directions, constraints); nothing is built or run."""
    search = config.search
    if search is None or search.search_space is None:
        raise ConfigError(
            "no [search.search_space] in the config: a search needs a space (see README.md, section 'Search')"
        )
    strategy, setup = search.strategy, search.strategy.setup
    _sum_direction(search)
    train, train_split = _train_config(config, search)
    evaluation = strategy.sw_runner.basic_evaluation
    hw = strategy.hw_runner.average_bitwidth
    plan = SearchPlan(
        space=search.search_space, sampler=_sampler(setup.sampler), metrics=_metrics(search),
        sum_scaled=setup.sum_scaled_metrics, constraints=_constraints(search), eval_mode=strategy.eval_mode,
        train=train, train_split=train_split,
        eval_split=evaluation.data_loader if evaluation else "val_dataloader",
        eval_samples=evaluation.num_samples if evaluation else None,
        n_trials=setup.n_trials, n_trials_given="n_trials" in setup.model_fields_set, n_jobs=setup.n_jobs,
        timeout=setup.timeout, seed=setup.seed if setup.seed is not None else config.seed,
        compare_to=hw.compare_to if hw else 32.0, heartbeat_interval=setup.heartbeat_interval,
        population=setup.population, pruner=_pruner(setup.pruner),
    )  # fmt: skip
    if plan.pruner != "none" and len(plan.directions) > 1:
        raise ConfigError(
            f"{STRATEGY}.setup.pruner = {setup.pruner!r} needs a single objective (Optuna prunes by one reported "
            f"value), but this search has {len(plan.directions)} (sum_scaled_metrics = false): set "
            "sum_scaled_metrics = true, keep one metric, or pruner = 'none'"
        )
    if plan.needs_fpga:
        from netcarve.analysis.fpga import require_estimator

        require_estimator()
    return plan


def target_trials(plan: SearchPlan, space: SearchSpace) -> int | None:
    """How many trials the study runs: brute force covers the space (or the first n_trials of it)."""
    if not plan.enumerates:
        if plan.n_trials is None and plan.timeout is None:
            raise ConfigError(f"{STRATEGY}.setup: n_trials = 'NA' needs a timeout, or the search never ends")
        return plan.n_trials
    if plan.n_trials_given and plan.n_trials is not None:
        if plan.n_trials < space.size:
            log.warning("brute force covers the first %d of %d configurations (n_trials)", plan.n_trials, space.size)
        return min(plan.n_trials, space.size)
    if space.size > MAX_ENUMERATED:
        raise ConfigError(
            f"brute force over {space.size:,} configurations (more than {MAX_ENUMERATED:,}): "
            f"set {STRATEGY}.setup.n_trials to cover part of the space, or use another sampler"
        )
    return space.size
