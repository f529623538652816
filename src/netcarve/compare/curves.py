"""Sample efficiency of samplers: best-so-far curves over the trial index and their summary (pure functions).

A run is the list of its finished trials in trial order; a trial's values are its objective values when
it is COMPLETE and feasible, else None (pruned, failed, infeasible trials spend budget but add nothing).

- One objective: the curve is the best value so far (in the study's direction); undefined (None) until
  the first usable trial.
- Several objectives: the curve is the hypervolume of the trials so far (maximised), with one reference
  point for all runs: the worst value of each objective over every usable trial of every run, pushed 10 %
  of that objective's range further out (:func:`netcarve.report.pareto.reference_point`).

Summary per sampler: mean ± sample standard deviation over its runs of the curve after 25 %, 50 % and 100 %
of ``n_trials`` (a run that ended earlier — brute force over a smaller space — keeps its last value), and
the mean number of trials a run needed to come within 5 % of the best value any run reached
(``best − 0.05·|best|`` when maximising, ``best + 0.05·|best|`` when minimising), over the runs that did.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from netcarve.outcomes import MAXIMIZE, best_so_far, best_value
from netcarve.report.pareto import hypervolume, reference_point

FRACTIONS = (0.25, 0.5, 1.0)
REACH = 0.95

Values = tuple[float, ...] | None


@dataclass(frozen=True)
class RunTrials:
    sampler: str
    seed: int
    run_dir: Path
    values: tuple[Values, ...]


@dataclass(frozen=True)
class Curve:
    sampler: str
    seed: int
    run_dir: Path
    points: tuple[float | None, ...]  # after 1, 2, … trials

    def at(self, k: int) -> float | None:
        """The value after ``k`` ≥ 1 trials (the last one when the run had fewer)."""
        if not self.points:
            return None
        return self.points[min(k, len(self.points)) - 1]


@dataclass(frozen=True)
class Stat:
    mean: float | None
    std: float | None
    n: int


@dataclass(frozen=True)
class SamplerSummary:
    sampler: str
    runs: int
    at: tuple[tuple[float, int, Stat], ...]  # (fraction, trials, statistic)
    to_reach: Stat  # trials needed, over the runs that reached the threshold
    reached: int


@dataclass(frozen=True)
class Comparison:
    measure: str  # "best objective" | "hypervolume"
    direction: str  # of the curve
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    n_trials: int
    reference_point: tuple[float, ...] | None
    best: float | None  # best final value of any run
    threshold: float | None
    curves: tuple[Curve, ...]
    summary: tuple[SamplerSummary, ...]


def stat(values: Sequence[float | None]) -> Stat:
    """Mean and sample standard deviation (0 for one value) of the defined values."""
    xs = [v for v in values if v is not None]
    if not xs:
        return Stat(None, None, 0)
    return Stat(statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0, len(xs))


def threshold(best: float, direction: str, reach: float = REACH) -> float:
    slack = (1 - reach) * abs(best)
    return best - slack if direction == MAXIMIZE else best + slack


def reaches(value: float | None, limit: float, direction: str) -> bool:
    if value is None:
        return False
    return value >= limit if direction == MAXIMIZE else value <= limit


def trials_to_reach(points: Sequence[float | None], limit: float, direction: str) -> int | None:
    """How many trials the curve needed to reach ``limit`` (None: never)."""
    return next((i + 1 for i, v in enumerate(points) if reaches(v, limit, direction)), None)


def hypervolume_curve(values: Sequence[Values], directions: Sequence[str], ref: Sequence[float]) -> list[float]:
    out: list[float] = []
    seen: list[tuple[float, ...]] = []
    for v in values:
        if v is None:
            out.append(out[-1] if out else 0.0)
        else:
            seen.append(v)
            out.append(hypervolume(seen, directions, ref))
    return out


def _summary(
    sampler: str, curves: Sequence[Curve], n_trials: int, limit: float | None, direction: str
) -> SamplerSummary:
    at = []
    for f in FRACTIONS:
        k = max(1, math.ceil(f * n_trials))
        at.append((f, k, stat([c.at(k) for c in curves])))
    needed = [trials_to_reach(c.points, limit, direction) if limit is not None else None for c in curves]
    return SamplerSummary(sampler, len(curves), tuple(at), stat(needed), sum(n is not None for n in needed))


def compare_runs(
    runs: Sequence[RunTrials], directions: Sequence[str], objectives: Sequence[str], n_trials: int
) -> Comparison:
    """Curves and per-sampler summaries (samplers in first-seen order)."""
    multi = len(directions) > 1
    usable = [v for r in runs for v in r.values if v is not None]
    ref = reference_point(usable, directions) if multi and usable else None
    curves = []
    for r in runs:
        if multi:
            points: list[float | None] = (
                list(hypervolume_curve(r.values, directions, ref)) if ref else [0.0] * len(r.values)
            )
        else:
            points = best_so_far([v[0] if v is not None else None for v in r.values], directions[0])
        curves.append(Curve(r.sampler, r.seed, r.run_dir, tuple(points)))
    direction = MAXIMIZE if multi else directions[0]
    finals = [c.points[-1] for c in curves if c.points and c.points[-1] is not None]
    best = best_value([f for f in finals if f is not None], direction) if finals else None
    limit = threshold(best, direction) if best is not None else None
    samplers = list(dict.fromkeys(c.sampler for c in curves))
    summary = tuple(_summary(s, [c for c in curves if c.sampler == s], n_trials, limit, direction) for s in samplers)
    return Comparison(
        measure="hypervolume" if multi else "best objective", direction=direction, objectives=tuple(objectives),
        directions=tuple(directions), n_trials=n_trials, reference_point=ref, best=best, threshold=limit,
        curves=tuple(curves), summary=summary,
    )  # fmt: skip
