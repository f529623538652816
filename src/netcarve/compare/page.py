"""compare.html: per sampler the mean curve over its seeds with the min–max band, the summary table and links
to every run's own report.html. Self-contained (inline CSS and SVG, no script)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from netcarve.compare.curves import REACH, Comparison, Curve
from netcarve.compare.output import percent, table_cells, table_headers
from netcarve.config.run import RunConfig, effective_dict
from netcarve.config.writer import dumps_toml
from netcarve.outcomes import MAXIMIZE, better_arrow
from netcarve.report.markup import esc, figure, number, page, table
from netcarve.report.svg import Plot

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _css() -> str:
    rules = []
    for i, color in enumerate(PALETTE):
        rules.append(
            f"svg .mean.c{i}{{stroke:{color}}}svg .band.c{i}{{fill:{color}}}svg rect.swatch.c{i}{{fill:{color}}}"
        )
    return "\n".join(rules)


def _envelope(curves: Sequence[Curve], n: int) -> list[tuple[int, float, float, float]]:
    """(k, mean, min, max) after k = 1 … n trials, where any run has a value."""
    out = []
    for k in range(1, n + 1):
        values = [v for c in curves if (v := c.at(k)) is not None]
        if values:
            out.append((k, sum(values) / len(values), min(values), max(values)))
    return out


def steps(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """A step-after line through ``points`` (a best-so-far value holds until the next trial changes it)."""
    out: list[tuple[float, float]] = []
    for x, y in points:
        if out:
            out.append((x, out[-1][1]))
        out.append((x, y))
    return out


def _ylabel(comparison: Comparison) -> str:
    if comparison.measure == "hypervolume":
        return f"hypervolume of the trials so far  {better_arrow(MAXIMIZE, vertical=True)}"
    return f"best {comparison.objectives[0]} so far  {better_arrow(comparison.direction, vertical=True)}"


def curves_svg(comparison: Comparison) -> str | None:
    samplers = [s.sampler for s in comparison.summary]
    n = max([comparison.n_trials, *(len(c.points) for c in comparison.curves)])
    envelopes = {s: _envelope([c for c in comparison.curves if c.sampler == s], n) for s in samplers}
    values = [v for env in envelopes.values() for _, _, lo, hi in env for v in (lo, hi)]
    if not values:
        return None
    plot = Plot((1, max(n, 2)), (min(values), max(values)), height=400, x_integer=True, x_loose=False)
    plot.axes("trials", _ylabel(comparison))
    for i, s in enumerate(samplers):
        env, color = envelopes[s], f"c{i % len(PALETTE)}"
        if len(env) > 1:
            upper = steps([(k, hi) for k, _, _, hi in env])
            lower = steps([(k, lo) for k, _, lo, _ in env])
            plot.polygon(upper + lower[::-1], f"band {color}")
        if env:
            plot.polyline(steps([(k, mean) for k, mean, _, _ in env]), f"mean {color}")
    plot.legend([(f"c{i % len(PALETTE)}", s) for i, s in enumerate(samplers)])
    return plot.render(f"{comparison.measure} against trials per sampler", "plot compare-plot")


def _header(comparison: Comparison, config: RunConfig, command: str) -> list[str]:
    space = config.search.search_space.name if config.search and config.search.search_space else "?"
    seeds = sorted({c.seed for c in comparison.curves})
    objectives = ", ".join(f"{o} ({d})" for o, d in zip(comparison.objectives, comparison.directions, strict=False))
    samplers = ", ".join(s.sampler for s in comparison.summary)
    meta = (
        f"space {space} · samplers {samplers} · seeds {', '.join(map(str, seeds))} · "
        f"{comparison.n_trials} trials per run · objective(s): {objectives}"
    )
    out = [
        f"<h1>Sampler comparison: {esc(config.model)} on {esc(config.dataset)}</h1>",
        f'<p class="meta">{esc(meta)}</p>',
    ]
    out.append(f"<p>command: <code>{esc(command)}</code></p>")
    out.append(f"<details><summary>config</summary><pre>{esc(dumps_toml(effective_dict(config)))}</pre></details>")
    return out


def _explain(comparison: Comparison) -> str:
    if comparison.measure == "hypervolume":
        ref = ", ".join(number(v) for v in comparison.reference_point or ())
        what = (f"hypervolume of the feasible complete trials so far, reference point ({ref}): the worst value of "
                "each objective over all runs, 10 % of its range further out")  # fmt: skip
    else:
        what = f"best feasible {comparison.objectives[0]} so far ({comparison.direction})"
    best = "—" if comparison.best is None else number(comparison.best)
    limit = "—" if comparison.threshold is None else number(comparison.threshold)
    return (f"Curve: {what}. Best of any run: {best}; '{percent(REACH)} of best' means reaching {limit} "
            "(within 5 % of the best value's magnitude). Mean ± sample standard deviation over seeds.")  # fmt: skip


def _runs_table(comparison: Comparison, root: Path) -> str:
    rows = []
    for c in comparison.curves:
        rel = c.run_dir.relative_to(root) if c.run_dir.is_relative_to(root) else c.run_dir
        link = f'<a href="{esc((rel / "report.html").as_posix())}">{esc(rel)}</a>'
        final = c.points[-1] if c.points else None
        rows.append([esc(c.sampler), str(c.seed), str(len(c.points)), "—" if final is None else number(final), link])
    return table(["sampler", "seed", "trials", "final", "run (report)"], rows, numeric=(False, True, True, True))


def render_compare(comparison: Comparison, config: RunConfig, root: Path, command: str = "") -> str:
    body = _header(comparison, config, command)
    rows = [[esc(c) for c in table_cells(s)] for s in comparison.summary]
    body += [
        "<h2>Summary</h2>",
        table(table_headers(comparison), rows),
        f'<p class="meta">{esc(_explain(comparison))}</p>',
    ]
    svg = curves_svg(comparison)
    body.append("<h2>Curves</h2>")
    caption = (
        "Per sampler: the mean curve over its seeds (line) and the range from the lowest to the highest run (band)."
    )
    body.append(figure(svg, caption) if svg else "<p>no usable trial</p>")
    body += ["<h2>Runs</h2>", _runs_table(comparison, root)]
    return page(f"netcarve compare: {config.model} on {config.dataset}", body, _css())
