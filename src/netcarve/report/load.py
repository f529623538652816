"""Read a search run dir (trials.csv, best.json; config.toml, manifest.json and log.json when present).

Nothing is imported from torch, Optuna or :mod:`netcarve.search`: a report is made from the files alone. A
trial is *feasible* when every ``[search.constraints]`` bound of the stored config holds for its metrics, by
the search's own rule (:mod:`netcarve.outcomes`: a metric the trial did not measure counts as satisfied).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netcarve import outcomes
from netcarve.errors import NetcarveError
from netcarve.metrics import canonical_metric, table_order, unit_of

REQUIRED = ("trials.csv", "best.json")
#: trials.csv columns that are neither objectives, params nor metrics
BOOKKEEPING = (*outcomes.TRIAL_KEYS, *outcomes.BOOKKEEPING_ATTRS)
PARAM = outcomes.PARAM_PREFIX


class ReportError(NetcarveError):
    """A run dir cannot be reported on (not a search run, unreadable files, output exists)."""


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str
    scale: float
    unit: str


@dataclass(frozen=True)
class Constraint:
    """A ``[search.constraints]`` bound of the stored config (an :class:`netcarve.outcomes.Bound`)."""

    metric: str
    min: float | None
    max: float | None


@dataclass(frozen=True)
class Trial:
    number: int
    state: str
    objectives: tuple[float, ...]  # empty unless COMPLETE
    params: dict[str, str]
    metrics: dict[str, float]
    duration_s: float | None
    reused_from: int | None
    note: str  # why it was pruned or failed
    feasible: bool
    #: learned quantizers: the epoch of the trial's front that is its design
    design_epoch: int | None = None

    @property
    def complete(self) -> bool:
        return self.state == "COMPLETE"


@dataclass(frozen=True)
class BestRow:
    number: int
    software: dict[str, Any]
    hardware: dict[str, Any]
    scaled: dict[str, Any]


@dataclass(frozen=True)
class RunData:
    run_dir: Path
    model: str
    dataset: str
    space: str
    sampler: str
    n_trials: int | None
    command: str
    started: str
    config_text: str
    sum_scaled: bool
    directions: tuple[str, ...]
    metrics: tuple[Metric, ...]
    objective_names: tuple[str, ...]  # trials.csv objective columns without the "objective_" prefix
    constraints: tuple[Constraint, ...]
    trials: tuple[Trial, ...]
    best: tuple[BestRow, ...]
    wall_time_s: float | None

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)

    @property
    def reused(self) -> int:
        return sum(t.reused_from is not None for t in self.trials)

    @property
    def metric_columns(self) -> list[str]:
        return table_order(k for t in self.trials for k in t.metrics)

    @property
    def param_names(self) -> list[str]:
        return list(dict.fromkeys(k for t in self.trials for k in t.params))


def _float(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from exc


def _constraints(config: Mapping[str, Any]) -> tuple[Constraint, ...]:
    table = (config.get("search") or {}).get("constraints") or {}
    out = []
    for name, bound in table.items():
        if isinstance(bound, Mapping):
            low, high = (_float(str(bound.get(k, ""))) for k in ("min", "max"))
            out.append(Constraint(canonical_metric(name), low, high))
    return tuple(out)


def _trial(row: Mapping[str, str], objective_columns: list[str], constraints: tuple[Constraint, ...]) -> Trial:
    metrics = {}
    for key, text in row.items():
        if key is None or key in BOOKKEEPING or outcomes.is_objective_column(key) or key.startswith(PARAM):
            continue
        value = _float(text)
        if value is not None:
            metrics[key] = value
    values = [_float(row.get(c)) for c in objective_columns]
    state = row.get("state", "")
    objectives = tuple(v for v in values if v is not None) if state == "COMPLETE" else ()
    reused = row.get("reused_from") or ""
    epoch = row.get("design_epoch") or ""
    return Trial(
        number=int(row["number"]),
        state=state,
        objectives=objectives if len(objectives) == len(objective_columns) else (),
        params={k.removeprefix(PARAM): v for k, v in row.items() if k and k.startswith(PARAM) and v != ""},
        metrics=metrics,
        duration_s=_float(row.get("duration_s")),
        reused_from=int(float(reused)) if reused else None,
        note=row.get("pruned") or row.get("error") or "",
        feasible=outcomes.feasible(outcomes.violations(constraints, metrics).values()),
        design_epoch=int(float(epoch)) if epoch else None,
    )


def _read_trials(path: Path, constraints: tuple[Constraint, ...]) -> tuple[list[str], tuple[Trial, ...]]:
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            objective_columns = [c for c in header if outcomes.is_objective_column(c)]
            trials = tuple(_trial(row, objective_columns, constraints) for row in reader)
    except (OSError, KeyError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from exc
    names = [outcomes.objective_of_column(c) for c in objective_columns]
    return names, tuple(sorted(trials, key=lambda t: t.number))


def _wall_time(run_dir: Path) -> float | None:
    path = run_dir / "log.json"
    if not path.is_file():
        return None
    records = _json(path)
    starts = [dt.datetime.fromisoformat(r["datetime_start"]) for r in records if r.get("datetime_start")]
    ends = [dt.datetime.fromisoformat(r["datetime_complete"]) for r in records if r.get("datetime_complete")]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else None


def _best(data: Mapping[str, Any]) -> tuple[BestRow, ...]:
    out = []
    for record in data.get("best") or []:
        attrs = record.get("user_attrs") or {}  # best.json of an older run keeps the groups there only
        groups = (dict(record.get(k) or attrs.get(k) or {}) for k in outcomes.BEST_COLUMNS[1:])
        out.append(BestRow(int(record["number"]), *groups))
    return tuple(out)


#: the unit of fpga_latency in a run whose manifest does not say which package computed it: such a run
#: predates alkaid, and its values are da4ml's adder delays, not alkaid's ns
DA4ML_LATENCY_UNIT = "adder delays, da4ml"


def _unit(name: str, manifest: Mapping[str, Any]) -> str:
    """``name``'s unit in this run: fpga_latency's as its manifest records it (da4ml's when it records none)."""
    if name != "fpga_latency":
        return unit_of(name)
    recorded = manifest.get("firmware_metrics")
    return str(recorded.get("latency_unit", unit_of(name))) if isinstance(recorded, dict) else DA4ML_LATENCY_UNIT


def _metrics(data: Mapping[str, Any], manifest: Mapping[str, Any]) -> tuple[Metric, ...]:
    out = []
    for m in data.get("metrics") or []:
        name = canonical_metric(str(m["name"]))
        direction, scale = str(m.get("direction", outcomes.MAXIMIZE)), float(m.get("scale", 1.0))
        out.append(Metric(name, direction, scale, _unit(name, manifest)))
    return tuple(out)


def command_line(manifest: Mapping[str, Any]) -> str:
    """The command line stored in a run's manifest (``netcarve …`` when run through the entry point)."""
    argv = manifest.get("argv")
    if isinstance(argv, list) and argv:
        return shlex.join(["netcarve" if Path(str(argv[0])).name == "netcarve" else str(argv[0]), *map(str, argv[1:])])
    return str(manifest.get("command", ""))


def check_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise ReportError(f"{str(run_dir)!r} is not a directory")
    for name in REQUIRED:
        if not (run_dir / name).is_file():
            raise ReportError(f"{str(run_dir)!r} is not a search run dir: {name} is missing")


def load_run(run_dir: Path | str) -> RunData:
    """Everything the report shows, read from the files of ``run_dir``."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    best = _json(run_dir / "best.json")
    config_path = run_dir / "config.toml"
    config_text = config_path.read_text() if config_path.is_file() else ""
    try:
        config = tomllib.loads(config_text)
    except tomllib.TOMLDecodeError as exc:
        raise ReportError(f"cannot read {config_path}: {exc}") from exc
    manifest = _json(run_dir / "manifest.json") if (run_dir / "manifest.json").is_file() else {}
    constraints = _constraints(config)
    objective_names, trials = _read_trials(run_dir / "trials.csv", constraints)
    strategy = (config.get("search") or {}).get("strategy") or {}
    setup = strategy.get("setup") or {}
    n_trials = setup.get("n_trials")
    return RunData(
        run_dir=run_dir,
        model=str(config.get("model", "?")),
        dataset=str(config.get("dataset", "?")),
        space=str(((config.get("search") or {}).get("search_space") or {}).get("name", "?")),
        sampler=str(setup.get("sampler", "?")),
        n_trials=int(n_trials) if isinstance(n_trials, int) else None,
        command=command_line(manifest),
        started=str(manifest.get("started", "")),
        config_text=config_text,
        sum_scaled=bool(best.get("sum_scaled_metrics", False)),
        directions=tuple(str(d) for d in best.get("directions") or ()),
        metrics=_metrics(best, manifest),
        objective_names=tuple(objective_names),
        constraints=constraints,
        trials=trials,
        best=_best(best),
        wall_time_s=_wall_time(run_dir),
    )
