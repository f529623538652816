"""Rich progress bars for training (steps, loss, accuracy, time left)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from netcarve.cli.common import err_console
from netcarve.train.loop import StepCallback


@contextmanager
def training_progress(description: str = "training") -> Iterator[StepCallback]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    task = progress.add_task(description, total=None, loss=float("nan"), acc=float("nan"))

    def on_step(step: int, total: int, loss: float, acc: float) -> None:
        progress.update(task, completed=step, total=total, loss=loss, acc=acc)

    with progress:
        yield on_step
