"""The files of a compare run: compare.csv (every curve point), compare.json (summary), compare.html."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from netcarve.compare.curves import REACH, Comparison, Curve, SamplerSummary, Stat
from netcarve.config.run import RunConfig

CSV_NAME, JSON_NAME, HTML_NAME = "compare.csv", "compare.json", "compare.html"


def percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def write_csv(path: Path, comparison: Comparison) -> None:
    """One row per (sampler, seed, trial): ``trial`` counts the finished trials (1 … n), ``best_so_far`` is
    the best objective or the hypervolume after them (empty while no trial was usable)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sampler", "seed", "trial", "best_so_far"])
        for c in comparison.curves:
            for k, v in enumerate(c.points, start=1):
                writer.writerow([c.sampler, c.seed, k, "" if v is None else repr(v)])


def _stat(s: Stat) -> dict[str, Any]:
    return {"mean": s.mean, "std": s.std, "n": s.n}


def _summary(s: SamplerSummary) -> dict[str, Any]:
    return {
        "runs": s.runs,
        "after": {percent(f): {"trials": k, **_stat(st)} for f, k, st in s.at},
        "trials_to_reach": _stat(s.to_reach),
        "reached": s.reached,
    }


def _run(c: Curve, comparison: Comparison, root: Path) -> dict[str, Any]:
    from netcarve.compare.curves import trials_to_reach

    limit = comparison.threshold
    needed = trials_to_reach(c.points, limit, comparison.direction) if limit is not None else None
    final = c.points[-1] if c.points else None
    return {"sampler": c.sampler, "seed": c.seed, "run_dir": _rel(c.run_dir, root), "trials": len(c.points),
            "final": final, "trials_to_reach": needed}  # fmt: skip


def summary_dict(comparison: Comparison, root: Path) -> dict[str, Any]:
    return {
        "measure": comparison.measure,
        "direction": comparison.direction,
        "objectives": list(comparison.objectives),
        "directions": list(comparison.directions),
        "n_trials": comparison.n_trials,
        "reach": REACH,
        "reference_point": list(comparison.reference_point) if comparison.reference_point else None,
        "best": comparison.best,
        "threshold": comparison.threshold,
        "runs": [_run(c, comparison, root) for c in comparison.curves],
        "summary": {s.sampler: _summary(s) for s in comparison.summary},
    }


def write_outputs(root: Path, comparison: Comparison, config: RunConfig) -> None:
    from netcarve.compare.page import render_compare
    from netcarve.paths import write_json
    from netcarve.report.load import command_line

    write_csv(root / CSV_NAME, comparison)
    write_json(root / JSON_NAME, summary_dict(comparison, root))
    manifest = root / "manifest.json"
    command = command_line(json.loads(manifest.read_text())) if manifest.is_file() else ""
    (root / HTML_NAME).write_text(render_compare(comparison, config, root, command), encoding="utf-8")


def plus_minus(mean: float, std: float) -> str:
    """Mean and std with the same decimals: 4 significant digits of the mean (993.3 ± 240.8, 0.8523 ± 0.0120)."""
    magnitude = math.floor(math.log10(abs(mean))) if mean else 0
    digits = min(max(0, 3 - magnitude), 8)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def stat_text(s: Stat, runs: int) -> str:
    if s.mean is None:
        return "—"
    text = plus_minus(s.mean, s.std or 0.0)
    return text if s.n == runs else f"{text} ({s.n}/{runs} runs)"


def table_headers(comparison: Comparison) -> list[str]:
    after = [f"after {k} ({percent(f)})" for f, k, _ in comparison.summary[0].at]
    return ["sampler", "runs", *after, f"trials to {percent(REACH)} of best"]


def table_cells(s: SamplerSummary) -> list[str]:
    if s.to_reach.mean is None:
        reach = "—"
    else:
        reach = f"{s.to_reach.mean:.1f}" + ("" if s.reached == s.runs else f" ({s.reached}/{s.runs} runs)")
    return [s.sampler, str(s.runs), *(stat_text(st, s.runs) for _, _, st in s.at), reach]
