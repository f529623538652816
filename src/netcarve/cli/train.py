"""``netcarve train`` and ``netcarve test``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from netcarve.cli.common import console, handle_errors, setup_logging

if TYPE_CHECKING:
    from netcarve.train.front import FrontMember

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config (MASE's ch format).")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override any config key: --set max_epochs=3 (repeatable).")
]
ModelArg = Annotated[str | None, typer.Argument(help="Registered model, or 'module:callable' / 'file.py:callable'.")]
DatasetArg = Annotated[
    str | None,
    typer.Argument(help="digits, wine, breast-cancer, synthetic-jsc[:N], jsc, or a JSC file path."),
]
ProjectOpt = Annotated[str | None, typer.Option(help="Run dir name under project_dir.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v")]


def check_batch_size(value: int | None) -> None:
    """``--batch-size`` must be at least 1: a one-line error naming the flag, before anything is loaded."""
    from netcarve.errors import ConfigError

    if value is not None and value < 1:
        raise ConfigError(f"--batch-size must be at least 1 (got {value})")


def results_table(title: str, rows: dict[str, Any], class_names: tuple[str, ...] = ()) -> Table:
    """One column per split; rows: loss, accuracy, then accuracy per class."""
    table = Table(title=title)
    table.add_column("metric")
    for split in rows:
        table.add_column(split, justify="right")
    table.add_row("loss", *(f"{r.loss:.4f}" for r in rows.values()))
    table.add_row("accuracy", *(f"{r.accuracy:.4f}" for r in rows.values()), style="bold")
    for i, name in enumerate(class_names):
        cells = [f"{r.per_class_accuracy[i]:.3f}" if i < len(r.per_class_accuracy) else "" for r in rows.values()]
        table.add_row(f"accuracy[{name}]", *cells)
    return table


def front_table(members: Sequence[FrontMember], run_dir: Path) -> Table:
    """The epochs on the (validation accuracy, EBOPs) front (``TrainOutcome.front``), fewest EBOPs first."""
    table = Table(title="front: validation accuracy vs EBOPs (each checkpoint exports)")
    for column in ("epoch", "val accuracy", "EBOPs", "fpga_luts", "latency ns"):
        table.add_column(column, justify="right")
    table.add_column("checkpoint")
    for m in members:
        luts = "" if m.fpga_luts is None else f"{m.fpga_luts:.0f}"
        latency = "" if m.fpga_latency is None else f"{m.fpga_latency:.2f}"
        table.add_row(str(m.epoch), f"{m.val_accuracy:.4f}", f"{m.ebops:.6g}", luts, latency,
                      str(m.file.relative_to(run_dir)))  # fmt: skip
    return table


def register(app: typer.Typer) -> None:
    @app.command("train")
    @handle_errors
    def train_cmd(
        model: ModelArg = None,
        dataset: DatasetArg = None,
        config: ConfigOpt = None,
        max_epochs: Annotated[int | None, typer.Option(help="Epochs to train.")] = None,
        batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
        learning_rate: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
        seed: Annotated[int | None, typer.Option(help="Seed of initialisation and batch order.")] = None,
        load: Annotated[
            Path | None, typer.Option(help="Start from this checkpoint (a transformed one gives QAT).")
        ] = None,
        project: ProjectOpt = None,
        set_: SetOpt = None,
        verbose: VerboseOpt = False,
    ) -> None:
        """Train a model; writes runs/<project>/<time>/ with best.pt, last.pt, config.toml, metrics.json.

        Learned precision: also the (val accuracy, EBOPs) front of its epochs (front/, front.json), printed."""
        setup_logging(verbose)
        check_batch_size(batch_size)
        from netcarve.cli.progress import training_progress
        from netcarve.configure import build_config
        from netcarve.train.api import start_train

        overrides = {
            "model": model,
            "dataset": dataset,
            "max_epochs": max_epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "project": project,
        }
        cfg = build_config(config, overrides, set_ or [])
        job = start_train(cfg, str(load) if load else None)
        console.print(f"run dir: {job.run_dir}", highlight=False)
        with training_progress(f"train {cfg.model}") as on_step:
            outcome = job.run(on_step)
        result = outcome.fit
        title = f"{cfg.model} on {outcome.info.name}: best epoch {result.best_epoch} of {len(result.history)}"
        console.print(results_table(title, outcome.evaluations, outcome.info.class_names))
        if outcome.front:  # without estimates, the runner's warning has said why (one line)
            console.print(front_table(outcome.front, outcome.run_dir))
        final = result.final.train_loss
        console.print(f"final train loss {final!r}; checkpoints in {outcome.run_dir}", highlight=False)

    @app.command("test")
    @handle_errors
    def test_cmd(
        model: ModelArg = None,
        dataset: DatasetArg = None,
        load: Annotated[Path | None, typer.Option(help="Checkpoint to evaluate (required).")] = None,
        config: ConfigOpt = None,
        split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
        batch_size: Annotated[int | None, typer.Option(help="Evaluation batch size.")] = None,
        project: ProjectOpt = None,
        set_: SetOpt = None,
        verbose: VerboseOpt = False,
    ) -> None:
        """Evaluate a checkpoint: loss, accuracy and per-class accuracy on a split."""
        setup_logging(verbose)
        check_batch_size(batch_size)
        from netcarve.configure import build_config
        from netcarve.train.api import run_test

        cfg = build_config(
            config,
            {
                "model": model,
                "dataset": dataset,
                "load_name": str(load) if load else None,
                "project": project,
            },
            set_ or [],
        )
        outcome = run_test(cfg, split, batch_size)
        console.print(
            results_table(
                f"{cfg.model} on {outcome.info.name} ({cfg.load_name})",
                {split: outcome.result},
                outcome.info.class_names,
            )
        )
