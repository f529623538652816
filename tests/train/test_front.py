"""One training, a front of designs (issue 22): a run with learned quantizers keeps each epoch on the
(validation accuracy, EBOPs) Pareto front with its checkpoint, lists them with alkaid's estimates, and each
one exports bit for bit; a model without learned quantizers writes no front."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from netcarve.configure import build_config
from netcarve.data import load_dataset
from netcarve.outcomes import dominates, non_dominated
from netcarve.train import build_graph, evaluate, load_graph, save_checkpoint
from netcarve.train.api import TrainOutcome, estimated_front, run_train, write_front
from netcarve.train.front import DIRECTIONS, FRONT_DIR, FRONT_FILE, FrontMember
from netcarve.transforms.quantize.learned import ebops
from tests.e2e.cli import run

LEARNED = {"name": "learned", "data_in_width": 8, "data_in_frac_width": 4, "weight_width": 8,
           "weight_frac_width": 4, "bias_width": 8, "bias_frac_width": 4}  # fmt: skip
#: 6 epochs of hls4ml-jet on digits in batches of 64 (as tests/train/test_resources.py trains it)
FLAGS = {"model": "hls4ml-jet", "dataset": "digits", "max_epochs": 6, "batch_size": 64, "learning_rate": 1e-2}


def learned_checkpoint(path: Path, beta: float = 1e-4) -> Path:
    """hls4ml-jet for digits, learned per element on every Linear's data_in, weight and bias, beta · EBOPs in
    the loss (what ``netcarve transform`` with such a ``[passes.quantize]`` writes)."""
    info = load_dataset("digits").info
    torch.manual_seed(0)
    quantize = {"by": "type", "beta": beta, "default": {"config": LEARNED}}
    return save_checkpoint(path, build_graph("hls4ml-jet", info, (("quantize", quantize),)))


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory: pytest.TempPathFactory) -> TrainOutcome:
    pytest.importorskip("alkaid")  # the front's estimates and exports
    tmp = tmp_path_factory.mktemp("front")
    load = learned_checkpoint(tmp / "q.pt")
    config = build_config(None, {**FLAGS, "load_name": str(load)}, [f"project_dir='{tmp}'", "project='p'", "seed=1"])
    return run_train(config)


def test_an_integer_model_writes_no_front(tmp_path: Path) -> None:
    """jsc-toy (no learned quantizer) on digits, 1 epoch: no ``front/``, no ``front.json``, metrics.json has
    exactly the keys it had before the front existed, and the outcome's front is empty."""
    config = build_config(None, {"model": "jsc-toy", "dataset": "digits", "max_epochs": 1},
                          [f"project_dir='{tmp_path}'", "project='p'"])  # fmt: skip
    outcome = run_train(config)
    assert outcome.front == () and outcome.front_note is None
    assert {p.name for p in outcome.run_dir.iterdir()} == {"best.pt", "last.pt", "config.toml", "manifest.json",
                                                           "metrics.json"}  # fmt: skip
    splits = [f"{s}_{k}" for s in ("train", "val", "test") for k in ("loss", "accuracy")]
    assert set(outcome.metrics) == {"final_train_loss", "best_epoch", "steps", *splits}


def test_the_front_of_a_learned_training(learned_run: TrainOutcome) -> None:
    """beta = 1e-4 makes the EBOPs fall while the accuracy rises, so several epochs are on the front (seed 1:
    epochs 3 and 5; epochs 0, 1, 2 and 4 joined and left). The
    invariants: the members are exactly the non-dominated epochs of the whole history (no member dominates
    another, every other epoch is dominated by a member); ``front/`` holds exactly their checkpoints; each
    checkpoint is its epoch (reloaded: the recorded EBOPs and validation accuracy, to the last digit);
    front.json and metrics.json list the same members, each with alkaid's LUTs and latency."""
    outcome = learned_run
    history = outcome.fit.history
    points = [(r.val_accuracy, r.ebops) for r in history]
    assert all(e is not None for _, e in points)
    front = outcome.front
    assert len(front) >= 2, [(r.epoch, r.val_accuracy, r.ebops) for r in history]
    on_front = {m.epoch for m in front}
    assert on_front == {history[i].epoch for i in non_dominated(points, DIRECTIONS)}  # type: ignore[arg-type]
    assert not any(dominates(a.point, b.point, DIRECTIONS) for a in front for b in front)
    for r in history:
        if r.epoch not in on_front:
            assert any(dominates(m.point, (r.val_accuracy, r.ebops), DIRECTIONS) for m in front), r  # type: ignore[arg-type]
    # fewest EBOPs first; along a front without ties, more EBOPs buy more accuracy
    assert [m.ebops for m in front] == sorted(m.ebops for m in front)
    assert [m.val_accuracy for m in front] == sorted(m.val_accuracy for m in front)
    run_dir = outcome.run_dir
    assert 0 not in on_front  # epoch 0 always joins first: its checkpoint was written, then removed
    assert {p.name for p in (run_dir / FRONT_DIR).iterdir()} == {f"epoch-{m.epoch}.pt" for m in front}
    info, val = outcome.info, load_dataset("digits").val
    for m in front:
        record = history[m.epoch]
        assert (m.val_accuracy, m.ebops) == (record.val_accuracy, record.ebops)
        graph = load_graph(m.checkpoint, "hls4ml-jet", info)
        with torch.no_grad():
            assert ebops(graph).item() == m.ebops
        assert evaluate(graph.module, val).accuracy == m.val_accuracy
        assert m.fpga_luts is not None and m.fpga_luts > 0 and m.fpga_latency is not None and m.fpga_latency > 0
    listed = json.loads((run_dir / FRONT_FILE).read_text())
    assert listed["objectives"] == {"val_accuracy": "maximize", "ebops": "minimize"}
    assert listed["members"] == outcome.metrics["front"] == json.loads((run_dir / "metrics.json").read_text())["front"]
    assert [(d["epoch"], d["checkpoint"], d["fpga_luts"]) for d in listed["members"]] == [
        (m.epoch, f"front/epoch-{m.epoch}.pt", m.fpga_luts) for m in front
    ]


def test_every_front_checkpoint_exports_bit_exact(learned_run: TrainOutcome, tmp_path: Path) -> None:
    """Each member's checkpoint (learned state; the export freezes it) exports to alkaid with the check on
    digits' test split (360 rows): 0 difference, 100 % argmax agreement, and the export's cost and latency are
    the ones the front lists (the same frozen program)."""
    from netcarve.export.api import export

    for m in learned_run.front:
        outcome = export(m.checkpoint, "alkaid", tmp_path / f"fw-{m.epoch}")
        assert outcome.rows == 360 and outcome.max_abs_diff == 0.0 and outcome.argmax_agreement == 1.0
        assert outcome.figures["cost"] == m.fpga_luts and max(outcome.figures["latency_ns"]) == m.fpga_latency


def test_without_alkaid_the_front_says_so_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """alkaid missing: the members keep their points and checkpoints without estimates, and the reason is one
    line naming the extra; front.json carries it as ``fpga_note`` and lists no fpga keys."""
    import netcarve.analysis.fpga as fpga

    def missing() -> None:
        raise fpga.FpgaUnavailableError("the fpga metrics need the 'alkaid' package: pip install 'netcarve[fpga]'")

    monkeypatch.setattr(fpga, "require_estimator", missing)
    members = [FrontMember(3, 0.9, 1234.0, tmp_path / FRONT_DIR / "epoch-3.pt")]
    estimated, note = estimated_front(members, "hls4ml-jet", load_dataset("digits").info)
    assert estimated == members and note is not None and "\n" not in note and "netcarve[fpga]" in note
    listed = write_front(tmp_path, estimated, note)
    data = json.loads((tmp_path / FRONT_FILE).read_text())
    assert data["fpga_note"] == note
    assert data["members"] == listed == [{"epoch": 3, "val_accuracy": 0.9, "ebops": 1234.0,
                                          "checkpoint": "front/epoch-3.pt"}]  # fmt: skip


def test_netcarve_train_prints_the_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``netcarve train`` of a learned checkpoint (2 epochs) prints the front table: one row per member of
    front.json, with its epoch, EBOPs, LUTs and checkpoint."""
    pytest.importorskip("alkaid")
    monkeypatch.chdir(tmp_path)
    load = learned_checkpoint(tmp_path / "q.pt")
    code, out = run("train", "hls4ml-jet", "digits", "--load", str(load), "--max-epochs", "2", "--project", "p")
    assert code == 0, out
    listed = json.loads((tmp_path / "runs" / "p" / "latest" / FRONT_FILE).read_text())["members"]
    assert listed and "front: validation accuracy vs EBOPs" in out
    rows = [line for line in out.splitlines() if "front/epoch-" in line]
    assert len(rows) == len(listed)
    for row, member in zip(rows, listed, strict=True):
        cells = [c.strip() for c in row.strip("│ ").split("│")]
        assert cells[0] == str(member["epoch"]) and cells[-1] == member["checkpoint"]
        assert cells[2] == f"{member['ebops']:.6g}" and cells[3] == f"{member['fpga_luts']:.0f}"
