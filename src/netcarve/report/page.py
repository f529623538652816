"""report.html of a search run: one self-contained page (inline CSS and SVG, no script, no network).

Sections: title (model, dataset, space, sampler, n_trials, command), the effective config, a summary,
MASE's "Best trial(s)" table, the Pareto plot, the history plot(s), and a table of every trial.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netcarve import outcomes
from netcarve.report.load import RunData, Trial, load_run
from netcarve.report.markup import column_format, esc, figure, page, rounded, table, write_new
from netcarve.report.plots import history_svgs, pareto_axes, pareto_numbers, pareto_svg

REPORT_NAME = "report.html"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def _header(run: RunData) -> list[str]:
    n = "until timeout" if run.n_trials is None else str(run.n_trials)
    meta = f"space {run.space} · sampler {run.sampler} · n_trials {n}" + (
        f" · started {run.started}" if run.started else ""
    )
    out = [f"<h1>Search report: {esc(run.model)} on {esc(run.dataset)}</h1>", f'<p class="meta">{esc(meta)}</p>']
    if run.command:
        out.append(f"<p>command: <code>{esc(run.command)}</code></p>")
    out.append(f'<p class="meta">run dir: <code>{esc(run.run_dir.resolve())}</code></p>')
    if run.config_text:
        out.append(
            f"<details><summary>effective config (config.toml)</summary><pre>{esc(run.config_text)}</pre></details>"
        )
    return out


def _summary(run: RunData) -> list[str]:
    infeasible = sum(t.complete and not t.feasible for t in run.trials)
    durations = [t.duration_s for t in run.trials if t.duration_s is not None]
    complete = f"{run.count('COMPLETE')} (of which {run.reused} reused an earlier result, {infeasible} infeasible)"
    rows = [
        ("trials", str(len(run.trials))),
        ("complete", complete),
        ("pruned", str(run.count("PRUNED"))),
        ("failed", str(run.count("FAIL"))),
        ("objective", outcomes.objective_label(run.sum_scaled, run.metrics)),
        ("constraints", outcomes.constraints_label(run.constraints)),
        ("wall time (first trial start to last trial end)", _duration(run.wall_time_s)),
        ("time in trials", _duration(sum(durations)) if durations else "—"),
    ]  # fmt: skip
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    return ["<h2>Summary</h2>", f'<dl class="summary">{items}</dl>']


def _best(run: RunData) -> list[str]:
    out = ["<h2>Best trial(s)</h2>"]
    if not run.best:
        return [*out, "<p>no feasible completed trial</p>"]
    rows = [[str(b.number), rounded(b.software), rounded(b.hardware), rounded(b.scaled)] for b in run.best]
    return [*out, table(outcomes.BEST_COLUMNS, rows, numeric=(True,), cls="best")]


def _plots(run: RunData) -> list[str]:
    x, y = pareto_axes(run)
    out = ["<h2>Pareto plot</h2>"]
    svg = pareto_svg(run)
    if svg is None:
        out.append(f"<p>no complete trial has both {esc(y.name)} and {esc(x.name)}</p>")
    else:
        caption = (
            f"Every complete trial at ({x.name}, {y.name}); highlighted: the {len(pareto_numbers(run))} "
            "non-dominated trials among the complete, feasible, non-reused ones, joined by the boundary of "
            "the region they dominate. Hollow red: infeasible; faded: reused results. Hover a point for its "
            "configuration."
        )
        out.append(figure(svg, caption))
    out.append("<h2>History</h2>")
    panels = history_svgs(run)
    for axis, svg in panels:
        caption = (
            f"{axis.name} of each complete trial by trial number, and the best feasible {axis.name} so far "
            f"({axis.direction}); crosses at the bottom mark pruned (amber) and failed (red) trials."
        )
        out.append(figure(svg, caption))
    if not panels:
        out.append("<p>no complete trial</p>")
    return out


@dataclass(frozen=True)
class _Formats:
    """One format per numeric column of the All trials table (:func:`column_format`)."""

    objectives: list[Callable[[Any], str]]
    metrics: dict[str, Callable[[Any], str]]
    duration: Callable[[Any], str]

    @classmethod
    def of(cls, trials: Sequence[Trial], n_obj: int, metrics: list[str]) -> _Formats:
        return cls(
            [column_format(t.objectives[i] for t in trials if len(t.objectives) > i) for i in range(n_obj)],
            {m: column_format(t.metrics.get(m) for t in trials) for m in metrics},
            column_format(t.duration_s for t in trials),
        )


def _trial_cells(t: Trial, params: list[str], metrics: list[str], formats: _Formats) -> list[str]:
    objectives = [f(v) for f, v in zip(formats.objectives, t.objectives, strict=False)] or [""] * len(
        formats.objectives
    )
    note = f"reused from {t.reused_from}" if t.reused_from is not None else t.note
    if t.design_epoch is not None:
        note = f"design: epoch {t.design_epoch} of its front" + (f"; {note}" if note else "")
    if t.complete and not t.feasible:
        note = "infeasible" + (f"; {note}" if note else "")
    cells = [str(t.number), esc(t.state), *objectives, *(esc(t.params.get(p, "")) for p in params)]
    cells += [formats.metrics[m](t.metrics[m]) if m in t.metrics else "" for m in metrics]
    return [*cells, formats.duration(t.duration_s) if t.duration_s is not None else "", esc(note)]


def _trials(run: RunData) -> list[str]:
    params, metrics = run.param_names, run.metric_columns
    objectives = [outcomes.objective_column(n) for n in run.objective_names]
    headers = ["number", "state", *objectives, *params, *metrics, "duration_s", "note"]
    front = set(pareto_numbers(run))
    numeric = [True, False, *([True] * len(objectives)), *([False] * len(params)), *([True] * (len(metrics) + 1))]
    formats = _Formats.of(run.trials, len(objectives), metrics)
    rows = [_trial_cells(t, params, metrics, formats) for t in run.trials]
    classes = [f"{t.state}{' pareto' if t.number in front else ''}" for t in run.trials]
    note = '<p class="meta">Highlighted rows: the Pareto-optimal trials of the plot above.</p>'
    body = table(headers, rows, classes, numeric=numeric)
    return ["<h2>All trials</h2>", note, f'<div class="scroll">{body}</div>']


def render_report(run: RunData) -> str:
    body = [*_header(run), *_summary(run), *_best(run), *_plots(run), *_trials(run)]
    body.append('<p class="meta">made by netcarve report</p>')
    return page(f"netcarve search report: {run.model} on {run.dataset}", body)


def write_report(run_dir: Path | str, output: Path | str | None = None, force: bool = False) -> Path:
    """Write the report of ``run_dir`` (default ``RUN_DIR/report.html``); an existing file needs ``force``."""
    from netcarve.report.load import ReportError

    run = load_run(run_dir)
    target = Path(output) if output is not None else run.run_dir / REPORT_NAME
    write_new(target, render_report(run), force, ReportError)
    return target
