"""``netcarve search`` (MASE's ``ch search``) and ``netcarve worker`` (join a running study)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from netcarve.cli.common import console, err_console, handle_errors, setup_logging
from netcarve.cli.train import ConfigOpt, DatasetArg, ModelArg, ProjectOpt, SetOpt, VerboseOpt
from netcarve.outcomes import BEST_COLUMNS, constraints_label, objective_label

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from netcarve.search.plan import SearchPlan
    from netcarve.search.runner import Counts
    from netcarve.search.session import Prepared, Session
    from netcarve.search.spaces import SearchSpace

#: exit code of a search that ended with configurations not run (a worker died too often, trials left stale)
INCOMPLETE_EXIT = 3

StorageOpt = Annotated[
    str | None,
    typer.Option(
        envvar="NETCARVE_STORAGE",
        show_envvar=True,
        help="Optuna storage URL (postgresql://…, sqlite:///…) or a journal file path; NETCARVE_STORAGE keeps a "
        "password off the command line.",
    ),
]
StudyOpt = Annotated[str | None, typer.Option(help="Study name (default: <project>/<run dir name>).")]


def _quiet_optuna() -> None:
    """Optuna logs every trial at INFO on its own handler; netcarve shows a progress bar instead."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _round(values: dict[str, Any] | None) -> str:
    return repr({k: round(v, 3) if isinstance(v, float) else v for k, v in (values or {}).items()})


def best_table(best: list[FrozenTrial], plan: SearchPlan) -> Table:
    """MASE's "Best trial(s)" table: number, software_metrics, hardware_metrics, scaled_metrics; with a
    ``design_epoch`` column (the front member that is the trial's design) when a best trial has learned
    quantizers."""
    from netcarve.search.record import TrialRecord
    from netcarve.search.results import metric_groups

    number, *groups = BEST_COLUMNS
    records = [TrialRecord.of(t) for t in best]
    epochs = any(r.design_epoch is not None for r in records)
    table = Table(title="Best trial(s)")
    table.add_column(number, justify="right")
    if epochs:
        table.add_column("design_epoch", justify="right")
    for column in groups:
        table.add_column(column)
    for t, record in zip(best, records, strict=True):
        values = metric_groups(record, plan)
        epoch = [] if not epochs else ["" if record.design_epoch is None else str(record.design_epoch)]
        table.add_row(str(t.number), *epoch, *(_round(values[k]) for k in groups))
    return table


def _learned_note(space: SearchSpace) -> str:
    """Learned candidates keep their fronts (the design: the best member within the bounds)."""
    if not space.can_choose("name", "learned"):
        return ""
    return "; learned candidates validate every epoch, each keeping its front of epochs (its design: the best member)"


def _base_text(prepared: Prepared) -> str:
    from netcarve.search.api import trains_base_first

    cfg = prepared.config
    if cfg.load_name:
        return f"checkpoint {cfg.load_name}"
    if trains_base_first(prepared):
        return f"trained first for {cfg.max_epochs} epoch(s) (eval_mode without a checkpoint), saved as base.pt"
    return f"fresh {cfg.model} (seed {cfg.seed})"


def plan_table(prepared: Prepared, storage: str | None) -> Table:
    from netcarve.search.storage import redacted

    plan, space = prepared.plan, prepared.space
    table = Table(title=f"search plan: {space.name}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for leaf, choices in space.describe():
        table.add_row(leaf, choices)
    t = plan.train
    mode = (
        f"retrain each candidate: {t.max_epochs} epoch(s), {t.optimizer}, lr {t.learning_rate:g}, batch {t.batch_size}"
        if prepared.retrain
        else "evaluate each candidate (post-training quantization), no training"
    )
    rows = [
        ("space size", f"{space.size:,} configurations, {len(space.params)} searched parameters"),
        ("sampler", f"{plan.sampler} (seed {plan.seed})"),
        ("objective", objective_label(plan.sum_scaled, plan.metrics)),
        ("constraints", constraints_label(plan.constraints)),
        ("trials", "until timeout" if prepared.target is None else str(prepared.target)),
        ("processes", str(plan.n_jobs)),
        ("candidates", mode),
        *(
            [
                ("population", f"{plan.population} (candidates trained together){_learned_note(space)}"),
                ("pruner", plan.pruner),
            ]
            if prepared.retrain
            else []
        ),
        ("evaluation", f"{plan.eval_split}" + (f", first {plan.eval_samples} samples" if plan.eval_samples else "")),
        ("base model", _base_text(prepared)),
        ("storage", redacted(storage) if storage else "study.journal in the run dir"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


@contextmanager
def search_progress(session: Session) -> Iterator[tuple[Callable[[], None], Callable[[int, int], None]]]:
    """A progress bar of the trials, and under it one of the training steps of the candidate (or population)
    retraining now: yields (update after trials, update while training)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from netcarve.search.results import best_text
    from netcarve.search.runner import count_trials

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[best]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console,
    )  # fmt: skip
    task = progress.add_task("search", total=session.target, best="best: -")
    training = progress.add_task("train ", total=None, best="steps", visible=False)

    def update() -> None:
        counts = count_trials(session.study)
        text = best_text(session.study, session.prepared.plan)
        progress.update(task, completed=counts.done, best=f"{text}  failed {counts.failed}")
        progress.reset(training, total=None, visible=False)  # until the next candidates train

    def update_training(done: int, total: int) -> None:
        progress.update(training, completed=done, total=total, visible=True)

    with progress:
        yield update, update_training


def _overrides(**kw: Any) -> dict[str, Any]:
    setup = {k: kw.pop(k) for k in ("n_trials", "sampler", "n_jobs") if kw.get(k) is not None}
    if kw.get("seed") is not None:
        setup["seed"] = kw["seed"]
    out = {k: v for k, v in kw.items() if v is not None}
    if setup:
        out["search"] = {"strategy": {"setup": setup}}
    return out


def resume_command(session: Session) -> str:
    """The exact command that continues this search (the storage URL shown without its password)."""
    import shlex

    from netcarve.search.storage import journal_path, redacted

    cmd = f"netcarve search --resume {shlex.quote(str(session.run_dir))}"
    if journal_path(session.url) is None:
        cmd += f" --storage {shlex.quote(redacted(session.url))}"
        if redacted(session.url) != session.url:
            cmd += "  (with the password in place of ***, or the URL in NETCARVE_STORAGE)"
    return cmd


def summary_text(counts: Counts, seconds: float) -> str:
    """One line that matches trials.csv row for row: every state is named, stale rows included."""
    parts = [f"{counts.complete} complete" + (f" ({counts.reused} reused a repeat's result)" if counts.reused else "")]
    parts += [f"{counts.pruned} pruned", f"{counts.failed} failed"]
    if counts.stale:
        parts.append(
            f"{counts.stale} interrupted or lost with their worker "
            "(stale rows: run again by the other workers or by --resume)"
        )
    if counts.running or counts.waiting:
        parts.append(f"{counts.running} still running, {counts.waiting} waiting")
    return f"{counts.total} trials in {seconds:.1f} s: " + ", ".join(parts)


def _run(session: Session) -> None:
    """Run the study with a progress bar; write results; say whether it is complete (exit 3 if not)."""
    from netcarve.cli.common import Terminated, stop_on_sigterm
    from netcarve.search.api import finish, finish_interrupted
    from netcarve.search.runner import count_trials, run_study

    plan = session.prepared.plan
    console.print(f"run dir: {session.run_dir}   study: {session.study.study_name}", highlight=False)
    start = time.perf_counter()
    try:
        with stop_on_sigterm(), search_progress(session) as (update, update_training):
            done = run_study(session, plan.n_jobs, plan.timeout, update, update_training)
    except KeyboardInterrupt as exc:
        finish_interrupted(session)
        console.print(summary_text(count_trials(session.study), time.perf_counter() - start), highlight=False)
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        err_console.print(f"{what}: trials.csv and report.html are in {session.run_dir}; continue with:\n"
                          f"  {resume_command(session)}", highlight=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from exc
    best = finish(session)
    console.print(
        summary_text(count_trials(session.study), time.perf_counter() - start)
        + f"; results and report.html in {session.run_dir}",
        highlight=False,
    )
    console.print(best_table(best, plan) if best else "no feasible completed trial")
    if done.complete:
        return
    lost = []
    if done.missing:
        unit = "configurations" if plan.enumerates else "trials"
        lost.append(f"{done.missing} of {done.target} {unit} not run")
    if done.running:
        lost.append(f"{done.running} trial(s) still marked running by processes that did not finish")
    cause = "setup.timeout reached" if done.timed_out else "the search is incomplete"
    err_console.print(f"{cause}: {'; '.join(lost)}; continue with:\n  {resume_command(session)}",
                      highlight=False, soft_wrap=True)  # fmt: skip
    if not done.timed_out:
        raise typer.Exit(INCOMPLETE_EXIT)


def register(app: typer.Typer) -> None:
    @app.command("search")
    @handle_errors
    def search_cmd(
        model: ModelArg = None,
        dataset: DatasetArg = None,
        config: ConfigOpt = None,
        load: Annotated[Path | None, typer.Option(help="Base checkpoint (eval_mode quantizes it).")] = None,
        storage: StorageOpt = None,
        study_name: StudyOpt = None,
        n_trials: Annotated[int | None, typer.Option(help="Trials to complete (brute force: configurations).")] = None,
        sampler: Annotated[str | None, typer.Option(help="random, tpe, nsgaii, nsgaiii, qmc, gp, brute_force.")] = None,
        seed: Annotated[int | None, typer.Option(help="Seed of the sampler, the model and training.")] = None,
        n_jobs: Annotated[int | None, typer.Option(help="Worker processes on this host.")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and print the plan; run nothing.")] = False,
        resume: Annotated[Path | None, typer.Option(help="Continue the interrupted search of this run dir.")] = None,
        moved_model: Annotated[
            str | None,
            typer.Option(
                "--model",
                help="With --resume: the run's model file (file.py or file.py:callable), moved; it must have "
                "the sha256 the run recorded.",
            ),
        ] = None,
        moved_dataset: Annotated[
            str | None,
            typer.Option(
                "--dataset", help="With --resume: the run's dataset file, moved; it must have the recorded sha256."
            ),
        ] = None,
        project: ProjectOpt = None,
        set_: SetOpt = None,
        verbose: VerboseOpt = False,
    ) -> None:
        """Search a space of quantized / resized models (MASE's ch search); writes runs/<project>/<time>/."""
        setup_logging(verbose)
        _quiet_optuna()
        from netcarve.configure import build_config
        from netcarve.errors import ConfigError
        from netcarve.search import api
        from netcarve.search.storage import open_storage

        if resume is not None:
            if any(v is not None for v in (model, dataset, config, load, sampler, seed, project, study_name)) or set_:
                raise ConfigError(
                    "--resume continues a stored study: only --n-trials, --n-jobs, --storage, --model and "
                    "--dataset apply"
                )
            _run(api.resume_search(resume, storage, n_trials, n_jobs, moved_model, moved_dataset))
            return
        if moved_model is not None or moved_dataset is not None:
            option = "--model" if moved_model is not None else "--dataset"
            raise ConfigError(
                f"{option} points at a moved file of a run and goes with --resume; a new search takes MODEL and "
                "DATASET as arguments"
            )
        overrides = _overrides(model=model, dataset=dataset, seed=seed, project=project, n_trials=n_trials,
                               sampler=sampler, n_jobs=n_jobs)  # fmt: skip
        cfg = build_config(config, overrides, set_ or [])
        load_path = str(load) if load else None
        opened = open_storage(storage) if storage else None  # unreachable: an error before anything else
        if dry_run:
            console.print(plan_table(api.dry_run_prepare(cfg, load_path), storage))
            console.print("dry run: nothing was trained or written", highlight=False)
            return
        prepared = api.prepare_search(cfg, load_path)
        console.print(plan_table(prepared, storage))
        _run(api.start_search(prepared, storage, study_name, opened))

    @app.command("worker")
    @handle_errors
    def worker_cmd(
        storage: Annotated[
            str,
            typer.Option(
                envvar="NETCARVE_STORAGE",
                show_envvar=True,
                help="The study's storage URL or journal file (or NETCARVE_STORAGE: keeps a password "
                "off the command line).",
            ),
        ],
        study_name: Annotated[str, typer.Option(help="The study to join.")],
        config: ConfigOpt = None,
        worker_index: Annotated[int, typer.Option(help="Seeds the sampler with seed + index.")] = 0,
        timeout: Annotated[float | None, typer.Option(help="Stop asking for trials after this many seconds.")] = None,
        verbose: VerboseOpt = False,
    ) -> None:
        """Join a running study and run its trials until it is done (config read from the study)."""
        setup_logging(verbose)
        _quiet_optuna()
        from netcarve.cli.common import stop_on_sigterm
        from netcarve.search.api import join_worker
        from netcarve.search.runner import die_with_parent, work

        die_with_parent()
        session = join_worker(storage, study_name, str(config) if config else None, worker_index)
        deadline = time.time() + timeout if timeout is not None else None
        with stop_on_sigterm():
            ran = work(session, deadline)
        err_console.print(f"worker {worker_index}: ran {ran} trial(s) of {study_name}", highlight=False)
