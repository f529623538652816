"""``netcarve compare``: is one sampler more sample-efficient than another on this search?"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from netcarve.cli.common import console, err_console, handle_errors, setup_logging
from netcarve.cli.train import ConfigOpt, DatasetArg, ModelArg, ProjectOpt, SetOpt, VerboseOpt

if TYPE_CHECKING:
    from netcarve.compare.curves import Comparison


def parse_seeds(text: str) -> list[int]:
    from netcarve.errors import ConfigError

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise ConfigError(f"--seeds must be integers separated by commas (e.g. 0,1,2), got {text!r}") from exc
    if not seeds:
        raise ConfigError("--seeds: give at least one seed (e.g. 0,1,2)")
    from netcarve.config.training import MAX_SEED

    if bad := [s for s in seeds if not 0 <= s <= MAX_SEED]:
        raise ConfigError(f"--seeds: every seed must be in 0..{MAX_SEED} (2^32 − 1), got {bad[0]}")
    return list(dict.fromkeys(seeds))


class _Bars:
    """Rich progress: one bar over the runs, one over the current run's trials."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err_console,
        )  # fmt: skip
        self.runs = self.progress.add_task("runs", total=None)
        self.trials = self.progress.add_task("trials", total=None)

    def run_started(self, index: int, total: int, sampler: str, seed: int, target: int | None) -> None:
        self.progress.update(self.runs, completed=index, total=total, description=f"run {sampler} seed {seed}")
        self.progress.reset(self.trials, total=target, description=f"{sampler} seed {seed}")

    def trials_done(self, done: int) -> None:
        self.progress.update(self.trials, completed=done)

    def finish(self) -> None:
        task = self.progress.tasks[self.runs]
        self.progress.update(self.runs, completed=task.total, description="runs")


@contextmanager
def _bars() -> Iterator[_Bars]:
    bars = _Bars()
    with bars.progress:
        yield bars
        bars.finish()


@contextmanager
def _quiet_trials(verbose: bool) -> Iterator[None]:
    """Per-trial INFO messages of the search would fight the progress bars (kept with --verbose)."""
    logger = logging.getLogger("netcarve.search")
    level = logger.level
    if not verbose:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def summary_table(comparison: Comparison) -> Table:
    from netcarve.compare.output import table_cells, table_headers

    measure = "hypervolume" if comparison.measure == "hypervolume" else f"best {comparison.objectives[0]}"
    title = f"{measure} after k trials, mean ± std over seeds"
    table = Table(title=title)
    for i, header in enumerate(table_headers(comparison)):
        table.add_column(header, justify="left" if i == 0 else "right")
    for s in comparison.summary:
        table.add_row(*table_cells(s))
    return table


def register(app: typer.Typer) -> None:
    @app.command("compare")
    @handle_errors
    def compare_cmd(
        model: ModelArg = None,
        dataset: DatasetArg = None,
        config: ConfigOpt = None,
        samplers: Annotated[
            str, typer.Option(help="Samplers, comma-separated (random, tpe, nsgaii, …).")
        ] = "tpe,random",
        seeds: Annotated[
            str, typer.Option(help="Sampler seeds, comma-separated: one run per sampler and seed.")
        ] = "0,1,2",
        n_trials: Annotated[int | None, typer.Option(help="Trials per run (default: the config's n_trials).")] = None,
        project: ProjectOpt = None,
        set_: SetOpt = None,
        verbose: VerboseOpt = False,
    ) -> None:
        """Compare samplers: the config's search once per sampler and seed, best-so-far curves.

        Every run has the same space, metrics and trial budget; writes compare.csv, compare.json, compare.html
        and one search run dir per (sampler, seed).
        """
        setup_logging(verbose)
        from netcarve.cli.search import _quiet_optuna
        from netcarve.compare.run import resolve_samplers, run_compare
        from netcarve.configure import build_config
        from netcarve.errors import ConfigError
        from netcarve.runs import check_run_root
        from netcarve.workflow import project_name

        _quiet_optuna()
        names = resolve_samplers(samplers.split(","))
        seed_list = parse_seeds(seeds)
        overrides = {"model": model, "dataset": dataset, "project": project}
        cfg = build_config(config, overrides, set_ or [])
        check_run_root(cfg.project_dir, project_name(cfg))  # before the progress bars
        if n_trials is not None and n_trials < 1:
            raise ConfigError(
                f"invalid value for --n-trials: Input should be greater than or equal to 1 (got {n_trials})"
            )
        with _quiet_trials(verbose), _bars() as bars:
            result = run_compare(cfg, names, seed_list, n_trials, bars)
        console.print(summary_table(result.comparison))
        console.print(f"results in {result.run_dir} (compare.csv, compare.json, compare.html)", highlight=False)
