"""The report's two charts as inline SVG: the Pareto plot and the history of the objective(s).

Pareto plot: every COMPLETE trial at (metric 1, metric 2) — the first two objectives of a multi-objective
search; in sum mode the first two configured metrics; with one metric, that metric against model_size
(or accuracy, when the metric is model_size). Highlighted: the non-dominated trials among the complete,
feasible, non-reused ones (what best.json lists in multi-objective mode), joined by the staircase that
bounds the region they dominate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from netcarve.metrics import METRICS, unit_of
from netcarve.outcomes import MAXIMIZE, SUM_LABEL, best_so_far, better_arrow, non_dominated
from netcarve.report.load import RunData, Trial
from netcarve.report.pareto import staircase
from netcarve.report.svg import Plot


@dataclass(frozen=True)
class Axis:
    name: str
    direction: str
    unit: str

    def label(self, vertical: bool) -> str:
        arrow = better_arrow(self.direction, vertical)
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.name}{unit}  {arrow}"


def _natural(name: str) -> Axis:
    return Axis(name, METRICS.get(name).better if name in METRICS else MAXIMIZE, unit_of(name))


def pareto_axes(run: RunData) -> tuple[Axis, Axis]:
    """(x, y): y is the first metric (e.g. accuracy), x the second (e.g. a cost), each in its direction."""
    axes = [Axis(m.name, m.direction, m.unit) for m in run.metrics[:2]]
    if len(axes) == 1:
        axes.append(_natural("accuracy" if axes[0].name == "model_size" else "model_size"))
    if not axes:
        axes = [_natural("accuracy"), _natural("model_size")]
    return axes[1], axes[0]


def _xy(trial: Trial, x: Axis, y: Axis) -> tuple[float, float] | None:
    if x.name in trial.metrics and y.name in trial.metrics:
        return trial.metrics[x.name], trial.metrics[y.name]
    return None


def plotted_trials(run: RunData) -> list[tuple[Trial, tuple[float, float]]]:
    """The complete trials that have both plotted metrics, with their (x, y)."""
    x, y = pareto_axes(run)
    out = []
    for t in run.trials:
        xy = _xy(t, x, y) if t.complete else None
        if xy is not None:
            out.append((t, xy))
    return out


def pareto_numbers(run: RunData) -> list[int]:
    """Trial numbers of the highlighted front: non-dominated among complete, feasible, non-reused trials."""
    x, y = pareto_axes(run)
    candidates = [(t, xy) for t, xy in plotted_trials(run) if t.feasible and t.reused_from is None]
    front = non_dominated([xy for _, xy in candidates], (x.direction, y.direction))
    return [candidates[i][0].number for i in front]


def _tooltip(trial: Trial, extra: str) -> str:
    params = ", ".join(f"{k} = {v}" for k, v in trial.params.items())
    tags = [] if trial.feasible else ["infeasible"]
    if trial.reused_from is not None:
        tags.append(f"reused from {trial.reused_from}")
    return (
        f"trial {trial.number}: {extra}" + (f" ({'; '.join(tags)})" if tags else "") + (f"\n{params}" if params else "")
    )


def _domain(values: Sequence[float]) -> tuple[float, float]:
    return min(values), max(values)


def pareto_svg(run: RunData) -> str | None:
    points = plotted_trials(run)
    if not points:
        return None
    x, y = pareto_axes(run)
    front = set(pareto_numbers(run))
    plot = Plot(_domain([p[0] for _, p in points]), _domain([p[1] for _, p in points]), height=400)
    plot.axes(x.label(vertical=False), y.label(vertical=True))
    line = staircase([xy for t, xy in points if t.number in front], (x.direction, y.direction))
    if len(line) > 1:
        plot.polyline(line, "front-line")
    for on_front in (False, True):  # the front is drawn on top
        for t, (vx, vy) in points:
            if (t.number in front) != on_front:
                continue
            cls = "trial" + (" pareto" if on_front else "") + ("" if t.feasible else " infeasible")
            cls += " reused" if t.reused_from is not None else ""
            plot.circle(vx, vy, cls, _tooltip(t, f"{x.name} = {vx:.4g}, {y.name} = {vy:.4g}"))
    entries = [("trial", "complete trial"), ("trial pareto", f"Pareto-optimal ({len(front)})")]
    if any(not t.feasible for t, _ in points):
        entries.append(("trial infeasible", "infeasible"))
    plot.legend(entries)
    return plot.render(f"Pareto plot: {y.name} against {x.name}", "plot pareto-plot")


def history_axes(run: RunData) -> list[Axis]:
    if run.sum_scaled:
        return [Axis("objective", MAXIMIZE, SUM_LABEL)]
    by_name = {m.name: m for m in run.metrics}
    out = []
    for i, name in enumerate(run.objective_names):
        metric = by_name.get(name)
        direction = metric.direction if metric else (run.directions[i] if i < len(run.directions) else MAXIMIZE)
        out.append(Axis(name, direction, unit_of(name)))
    return out


def _best_line(trials: Sequence[Trial], index: int, direction: str, last: int) -> list[tuple[float, float]]:
    values = [t.objectives[index] if t.complete and t.objectives and t.feasible else None for t in trials]
    line: list[tuple[float, float]] = []
    for t, b in zip(trials, best_so_far(values, direction), strict=True):
        if b is None:
            continue
        if line and line[-1][1] != b:
            line.append((t.number, line[-1][1]))
        if not line or line[-1][1] != b:
            line.append((t.number, b))
    if line:
        line.append((last, line[-1][1]))
    return line


def _history_panel(run: RunData, index: int, axis: Axis) -> str | None:
    trials = run.trials
    done = [t for t in trials if t.complete and len(t.objectives) > index]
    if not done:
        return None
    last = max(t.number for t in trials)
    plot = Plot(
        (0, max(last, 1)),
        _domain([t.objectives[index] for t in done]),
        height=300,
        x_integer=True,
        x_loose=False,
        pad=0.07,
    )
    plot.axes("trial number", axis.label(vertical=True))
    line = _best_line(trials, index, axis.direction, last)
    if line:
        plot.polyline(line, "best-line")
    for t in done:
        cls = "hist" + ("" if t.feasible else " infeasible") + (" reused" if t.reused_from is not None else "")
        plot.circle(t.number, t.objectives[index], cls, _tooltip(t, f"{axis.name} = {t.objectives[index]:.4g}"), r=3.5)
    for t in trials:
        if t.state in ("PRUNED", "FAIL"):
            kind = "pruned" if t.state == "PRUNED" else "failed"
            plot.rug(t.number, f"mark {kind}", f"trial {t.number} {kind}: {t.note}")
    entries = [("hist", "complete trial"), ("best-line", "best so far")]
    entries += [(f"mark {k}", k) for k, s in (("pruned", "PRUNED"), ("failed", "FAIL")) if run.count(s)]
    plot.legend(entries)
    return plot.render(f"history of {axis.name}", "plot history-plot")


def history_svgs(run: RunData) -> list[tuple[Axis, str]]:
    """One panel per objective: each trial's value, the best so far, and pruned/failed trials as crosses."""
    panels = [(axis, _history_panel(run, i, axis)) for i, axis in enumerate(history_axes(run))]
    return [(axis, svg) for axis, svg in panels if svg is not None]
