"""Training keys that used to be validated but do nothing now have an effect: log_every_n_steps, load_type."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from netcarve.data.base import DatasetInfo, Split, TensorSplits
from netcarve.models import create_model
from netcarve.train import build_graph, load_graph, save_checkpoint
from netcarve.train.loop import TrainConfig, fit

JSC = DatasetInfo("jsc", 16, 5, ("g", "q", "w", "z", "t"))


def tiny_splits(n: int) -> TensorSplits:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 16, generator=gen), torch.randint(0, 5, (n,), generator=gen)
    return TensorSplits(JSC, Split(x, y), Split(x[:10], y[:10]), Split(x[:10], y[:10]))


@pytest.mark.parametrize(("every", "expected"), [(6, [6, 12, 18, 20]), (1, list(range(1, 21))), (50, [20])])
def test_log_every_n_steps_sets_the_progress_interval(every: int, expected: list[int]) -> None:
    """100 rows in batches of 10 for 2 epochs are 20 steps; progress is reported at every multiple of
    log_every_n_steps and after the last step: 6 → 6, 12, 18, 20; 1 → every step; 50 → only step 20."""
    torch.manual_seed(0)
    seen: list[tuple[int, int]] = []
    cfg = TrainConfig(max_epochs=2, batch_size=10, log_every_n_steps=every)
    fit(create_model("jsc-toy", JSC), tiny_splits(100), cfg, on_step=lambda s, t, *_: seen.append((s, t)))
    assert seen == [(s, 20) for s in expected]


def lightning_file(path: Path) -> Path:
    state = {f"model.{k}": v for k, v in build_graph("jsc-toy", JSC).module.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 1}, path)
    return path


@pytest.mark.parametrize(
    ("kind", "load_type", "warned"),
    [("netcarve", "pt", False), ("netcarve", None, False), ("netcarve", "pl", True), ("lightning", "pl", False),
     ("lightning", "pt", True), ("bare", "pt", False), ("bare", "mz", True)],
)  # fmt: skip
def test_load_type_mismatch_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, load_type: str | None, warned: bool
) -> None:
    """load_type is MASE's word for the file: pt (a state dict; netcarve's format is one), pl (Lightning).
    A mismatch is a warning naming both, and the file is read as what it is (the weights load)."""
    path = tmp_path / "m.pt"
    if kind == "netcarve":
        save_checkpoint(path, build_graph("jsc-toy", JSC))
    elif kind == "lightning":
        lightning_file(path)
    else:
        torch.save(build_graph("jsc-toy", JSC).module.state_dict(), path)
    with caplog.at_level(logging.WARNING):
        assert load_graph(path, "jsc-toy", JSC, load_type) is not None
    assert ("load_type = " in caplog.text) is warned
    if warned:
        assert f"load_type = {load_type!r}, but checkpoint {str(path)!r} is a " in caplog.text
