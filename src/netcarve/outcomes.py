"""Result logic over plain data: Pareto dominance, feasibility and violation, the best trials, and labels.

Pure Python — no torch, no Optuna — so the search (from a study), the report (from trials.csv and
best.json alone), compare and the CLI apply one set of rules:

- A point ``a`` *dominates* ``b`` when it is at least as good in every objective and strictly better in one,
  each objective in its own direction (``"maximize"`` or ``"minimize"``). Equal points do not dominate each
  other, so duplicates on a front are all kept.
- A constraint ``min ≤ value ≤ max`` (either bound may be absent) has the *violation*
  ``max(min − value, value − max)``; ≤ 0 is satisfied (Optuna's convention). A metric that was not measured
  (a trial pruned before it) counts as satisfied. A trial is *feasible* when every violation is ≤ 0.
- The *best* of a set of points: with one objective, every point at the best value (ties all kept); with
  several, the non-dominated ones (the Pareto front).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol

Direction = Literal["maximize", "minimize"]
MAXIMIZE: Direction = "maximize"
MINIMIZE: Direction = "minimize"
DIRECTIONS: tuple[Direction, ...] = (MAXIMIZE, MINIMIZE)
Vector = Sequence[float]

#: what the objective is in sum mode (one maximised value)
SUM_LABEL = "Σ sign·scale·metric"
#: MASE's "Best trial(s)" table: the trial number, then the user attributes of each metric group
BEST_COLUMNS = ("number", "software_metrics", "hardware_metrics", "scaled_metrics")


class Bound(Protocol):
    """A constraint on one metric: ``[search.constraints] <metric> = {min, max}``."""

    @property
    def metric(self) -> str: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...


class Objective(Protocol):
    """One configured objective metric: its name, direction and scale."""

    @property
    def name(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def scale(self) -> float: ...


def check_directions(directions: Iterable[str]) -> None:
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise ValueError(f"directions must be 'maximize' or 'minimize', got {bad[0]!r}")


# --- dominance and the best points ---------------------------------------------------------------------


def sign(direction: str) -> int:
    """+1 for a maximised metric, −1 for a minimised one (its sign in the sum mode's Σ sign·scale·metric)."""
    return 1 if direction == MAXIMIZE else -1


def better_or_equal(a: Vector, b: Vector, directions: Sequence[str]) -> bool:
    return all((x >= y) if d == MAXIMIZE else (x <= y) for x, y, d in zip(a, b, directions, strict=True))


def dominates(a: Vector, b: Vector, directions: Sequence[str]) -> bool:
    return better_or_equal(a, b, directions) and tuple(a) != tuple(b)


def non_dominated(points: Sequence[Vector], directions: Sequence[str]) -> list[int]:
    """Indices (ascending) of the points no other point dominates."""
    check_directions(directions)
    return [i for i, p in enumerate(points) if not any(dominates(q, p, directions) for q in points)]


def best(points: Sequence[Vector], directions: Sequence[str]) -> list[int]:
    """Indices (ascending) of the best points: all ties at the best value of one objective; the Pareto front
    of several. None when there are no points."""
    check_directions(directions)
    if not points:
        return []
    if len(directions) == 1:
        s = sign(directions[0])
        top = max(s * p[0] for p in points)
        return [i for i, p in enumerate(points) if s * p[0] == top]
    return non_dominated(points, directions)


def is_better(a: float, b: float, direction: str) -> bool:
    """``a`` strictly better than ``b`` in ``direction``."""
    return a > b if direction == MAXIMIZE else a < b


def best_value(values: Iterable[float], direction: str) -> float:
    """The best of (at least one) ``values`` in ``direction``."""
    return max(values) if direction == MAXIMIZE else min(values)


def best_so_far(values: Sequence[float | None], direction: str) -> list[float | None]:
    """Running best of ``values`` (None: no value, e.g. a pruned trial); None until the first value."""
    check_directions([direction])
    out: list[float | None] = []
    running: float | None = None
    for v in values:
        if v is not None and (running is None or is_better(v, running, direction)):
            running = v
        out.append(running)
    return out


# --- constraints ---------------------------------------------------------------------------------------


def violation(value: float, low: float | None, high: float | None) -> float:
    """``max(low − value, value − high)`` over the bounds given (−inf with none); ≤ 0: satisfied."""
    parts = [low - value if low is not None else float("-inf")]
    parts.append(value - high if high is not None else float("-inf"))
    return max(parts)


def violations(bounds: Iterable[Bound], metrics: Mapping[str, float]) -> dict[str, float]:
    """Each bound's violation by metric name; a metric not in ``metrics`` (not measured) counts 0."""
    return {b.metric: violation(metrics[b.metric], b.min, b.max) if b.metric in metrics else 0.0 for b in bounds}


def feasible(violation_values: Iterable[float]) -> bool:
    """Every constraint satisfied (each violation ≤ 0)."""
    return all(v <= 0 for v in violation_values)


def violation_reason(metric: str, value: float, low: float | None, high: float | None) -> str:
    """Why ``value`` breaks its bounds, e.g. ``model_size = 600 > max 512`` (for a violated constraint)."""
    if high is not None and value > high:
        return f"{metric} = {value:g} > max {high:g}"
    return f"{metric} = {value:g} < min {low:g}"


# --- labels --------------------------------------------------------------------------------------------


def constraint_label(bound: Bound) -> str:
    """``model_size ∈ [-∞, 512]``."""
    low = "-∞" if bound.min is None else f"{bound.min:g}"
    high = "∞" if bound.max is None else f"{bound.max:g}"
    return f"{bound.metric} ∈ [{low}, {high}]"


def constraints_label(bounds: Iterable[Bound]) -> str:
    """Every constraint's label, comma-separated; ``none`` without constraints."""
    return ", ".join(constraint_label(b) for b in bounds) or "none"


def objective_label(sum_scaled: bool, metrics: Sequence[Objective]) -> str:
    """What the study optimises, then each metric with its direction and scale."""
    if sum_scaled:
        kind = f"maximise {SUM_LABEL}"
    elif len(metrics) == 1:
        kind = "single objective"
    else:
        kind = "Pareto front (multi-objective)"
    listed = ", ".join(f"{m.name} ({m.direction}, scale {m.scale:g})" for m in metrics)
    return f"{kind}: {listed}" if listed else kind


def sum_objective_name(metrics: Sequence[Objective]) -> str:
    """The sum mode's objective spelt out, e.g. ``score = accuracy − 0.001·model_size``."""
    terms = []
    for i, m in enumerate(metrics):
        coefficient = sign(m.direction) * m.scale
        factor = "" if abs(coefficient) == 1 else f"{abs(coefficient):g}·"
        joint = ("−" if coefficient < 0 else "") if i == 0 else (" − " if coefficient < 0 else " + ")
        terms.append(f"{joint}{factor}{m.name}")
    return f"score = {''.join(terms)}"


def better_arrow(direction: str, vertical: bool) -> str:
    """``↑ better`` / ``↓ better`` on a vertical axis, ``→ better`` / ``← better`` on a horizontal one."""
    if vertical:
        return "↑ better" if direction == MAXIMIZE else "↓ better"
    return "→ better" if direction == MAXIMIZE else "← better"


# --- trials.csv layout (written by the search, read by the report) --------------------------------------

#: user attributes shown as trials.csv columns after the metrics
BOOKKEEPING_ATTRS = (
    "train_steps", "duration_s", "reused_from", "pruned", "pruned_epoch", "design_epoch", "population", "error",
    "internal_error", "log", "grid_id", "worker",
)  # fmt: skip
#: the first two columns, and the prefix of a searched parameter's column
TRIAL_KEYS = ("number", "state")
PARAM_PREFIX = "param:"
#: the one objective column of sum mode; a Pareto study has ``objective_<metric>`` per metric
SUM_OBJECTIVE = "objective"


def objective_column(name: str) -> str:
    """The trials.csv column of an objective: ``objective`` (sum mode) or ``objective_<metric>``."""
    return name if name == SUM_OBJECTIVE else f"{SUM_OBJECTIVE}_{name}"


def objective_columns(sum_scaled: bool, metrics: Iterable[str]) -> list[str]:
    return [SUM_OBJECTIVE] if sum_scaled else [objective_column(m) for m in metrics]


def is_objective_column(column: str) -> bool:
    return column == SUM_OBJECTIVE or column.startswith(f"{SUM_OBJECTIVE}_")


def objective_of_column(column: str) -> str:
    """The inverse of :func:`objective_column`."""
    return column if column == SUM_OBJECTIVE else column.removeprefix(f"{SUM_OBJECTIVE}_")
