"""Learned precision in a search (issue 22): a learned candidate is not pruned on its starting formats, trains
(in a population with the other learned candidates of its layer sequence) keeping its front of epochs, and the
trial's design is the front's best member meeting the constraints;
every member is recorded with its metrics and a checkpoint that reloads to them."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from netcarve.analysis import analyze
from netcarve.data import load_dataset
from netcarve.outcomes import MAXIMIZE, MINIMIZE, non_dominated
from netcarve.search.record import TrialRecord
from netcarve.train.checkpoint import load_checkpoint, load_graph
from netcarve.train.loop import evaluate
from tests.search.helpers import config, run_search, search_dict, trials

LEARNED: dict[str, Any] = {
    "default": {"config": {"name": [None]}},
    "linear": {"config": {"name": ["learned"], "data_in_width": [8], "data_in_frac_width": [4],
                          "weight_width": [8], "weight_frac_width": [4]}},
}  # fmt: skip
DATASET = "synthetic-jsc:2000"


def learned_search(tmp_path: Path, constraints: dict[str, Any] | None = None) -> dict[str, Any]:
    """One learned jsc-three-linear-layers, 4 epochs at a strong beta (3e-3): its EBOPs fall from about 6,000
    to under 100 while it trains, so its front holds several members trading accuracy for EBOPs."""
    data = search_dict(tmp_path, space="graph/quantize/mixed_precision_ptq", seed=LEARNED, dataset=DATASET)
    data["search"]["search_space"]["setup"]["by"] = "type"
    data["search"]["search_space"]["pass_config"] = {"beta": [3e-3]}
    data["search"]["strategy"]["sw_runner"]["basic_train"].update(max_epochs=4, batch_size=16, learning_rate=2e-2)
    data["search"]["constraints"] = constraints or {}
    return data


@pytest.fixture(scope="module")
def free(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return run_search(config(learned_search(tmp_path_factory.mktemp("free"))))


def test_the_trial_records_its_front_and_keeps_the_most_accurate_member(free: Any) -> None:
    """Objective accuracy, no bound: the design is the most accurate member (fewer EBOPs on a tie), and the
    trial's metrics are that member's. The members are mutually non-dominated in (accuracy ↑, EBOPs ↓), fewest
    EBOPs first, and the csv names the design's epoch."""
    (trial,) = trials(free, "COMPLETE")
    record = TrialRecord.of(trial)
    front = record.front
    assert len(front) >= 2
    points = [(m["metrics"]["accuracy"], m["metrics"]["ebops"]) for m in front]
    assert non_dominated(points, (MAXIMIZE, MINIMIZE)) == list(range(len(front)))
    assert [p[1] for p in points] == sorted(p[1] for p in points)
    best = max(front, key=lambda m: (m["metrics"]["accuracy"], -m["metrics"]["ebops"]))
    assert record.design_epoch == best["epoch"]
    assert dict(record.metrics) == best["metrics"]
    with (free.run_dir / "trials.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert int(row["design_epoch"]) == best["epoch"]


def test_each_member_checkpoint_reloads_to_its_recorded_metrics(free: Any) -> None:
    """Each ``trials/trial-0-front/epoch-K.pt`` rebuilds (replayed transforms, learned state) to a model whose
    validation accuracy and EBOPs are exactly the recorded ones; ``trial-0.pt`` (best.pt's source) holds the
    design's state, tensor for tensor."""
    (trial,) = trials(free, "COMPLETE")
    record = TrialRecord.of(trial)
    splits = load_dataset(DATASET)
    for member in record.front:
        graph = load_graph(free.run_dir / member["checkpoint"], "jsc-three-linear-layers", splits.info)
        assert evaluate(graph.module, splits.val).accuracy == member["metrics"]["accuracy"]
        assert analyze(graph, (1, 16)).total.ebops == member["metrics"]["ebops"]
    design = next(m for m in record.front if m["epoch"] == record.design_epoch)
    saved = load_checkpoint(free.run_dir / "trials" / "trial-0.pt").state_dict
    chosen = load_checkpoint(free.run_dir / design["checkpoint"]).state_dict
    assert saved.keys() == chosen.keys()
    for key in saved:
        torch.testing.assert_close(saved[key], chosen[key], rtol=0, atol=0)


def test_a_bound_on_ebops_picks_the_most_accurate_member_within_it(free: Any, tmp_path: Path) -> None:
    """The same search (same seed: the same front) with ``ebops ≤`` halfway between the front's two cheapest
    members: the candidate is not pruned on its starting EBOPs (about 6,000, far above the bound), the design is
    the most accurate member within the bound, and the trial is feasible."""
    (first,) = trials(free, "COMPLETE")
    front = TrialRecord.of(first).front
    limit = (front[0]["metrics"]["ebops"] + front[1]["metrics"]["ebops"]) / 2
    session = run_search(config(learned_search(tmp_path, {"ebops": {"max": limit}})))
    (trial,) = trials(session, "COMPLETE")
    record = TrialRecord.of(trial)
    assert [m["metrics"] for m in record.front] == [m["metrics"] for m in front]
    within = [m for m in front if m["metrics"]["ebops"] <= limit]
    assert record.design_epoch == max(within, key=lambda m: m["metrics"]["accuracy"])["epoch"]
    assert record.metrics["ebops"] <= limit and trial.constraints == {"ebops": record.metrics["ebops"] - limit}


def _mixed_search(tmp_path: Path, population: int) -> Any:
    """{integer, learned} × two weight widths on jsc-three-linear-layers, brute force, ``population``."""
    seed = {
        "default": {"config": {"name": [None]}},
        "linear": {"config": {"name": ["integer", "learned"], "data_in_width": [8], "weight_width": [4, 8]}},
    }
    data = search_dict(tmp_path, space="graph/quantize/mixed_precision_ptq", seed=seed, dataset=DATASET,
                       population=population)  # fmt: skip
    data["search"]["search_space"]["setup"]["by"] = "type"
    data["search"]["search_space"]["pass_config"] = {"beta": [1e-3]}
    return run_search(config(data))


def test_learned_candidates_train_in_their_own_population_as_one_by_one(tmp_path: Path) -> None:
    """A space of {integer, learned} × two weight widths, population 4: the two learned candidates train as one
    batch (population 2: their own layer template) and record fronts, the two integer ones as another and record
    none; and every trial records what it records trained one by one (population 1): the same front epochs and
    design epoch, EBOPs exactly, accuracies within one validation row. (The batched products round differently
    in the last bits; in a longer training a rounded frac or calibrated range can amplify that into another
    front, as the README says: this short one is deterministic and shows none.)"""
    together = {(t.params["linear/name"], t.params["linear/weight_width"]): TrialRecord.of(t)
                for t in trials(_mixed_search(tmp_path / "together", 4))}  # fmt: skip
    alone = {(t.params["linear/name"], t.params["linear/weight_width"]): TrialRecord.of(t)
             for t in trials(_mixed_search(tmp_path / "alone", 1))}  # fmt: skip
    assert len(together) == len(alone) == 4
    assert all(bool(r.front) == (name == "learned") for (name, _), r in together.items())
    assert all(r.population == 2 for r in together.values())
    rows = len(load_dataset(DATASET).val)
    for key, record in together.items():
        other = alone[key]
        assert record.design_epoch == other.design_epoch, key
        assert [m["epoch"] for m in record.front] == [m["epoch"] for m in other.front], key
        assert [m["metrics"]["ebops"] for m in record.front] == [m["metrics"]["ebops"] for m in other.front], key
        assert record.metrics["accuracy"] == pytest.approx(other.metrics["accuracy"], abs=1.01 / rows), key


def test_eval_mode_with_learned_precision_is_refused_up_front(tmp_path: Path) -> None:
    """Post-training quantization cannot learn a precision (nor calibrate the learned inputs' ranges: every
    input would be pruned, a dead design at 0 EBOPs): a space offering ``learned`` with ``eval_mode = true`` is a
    one-line ConfigError naming the key, before anything is trained or written."""
    from netcarve.errors import ConfigError
    from netcarve.search.api import prepare_search

    data = learned_search(tmp_path)
    data["search"]["strategy"]["eval_mode"] = True
    with pytest.raises(ConfigError, match=r"search\.strategy\.eval_mode: the space offers the 'learned' quantizer"):
        prepare_search(config(data))
    assert not (tmp_path / "runs").exists()


def test_a_passes_table_beta_is_said_to_be_unused(tmp_path: Path, caplog: Any) -> None:
    """A MASE config may carry ``[passes.quantize]`` beside its search; a beta set there never reaches the
    search's candidates, and the search says where it goes instead."""
    from netcarve.search.api import prepare_search

    data = learned_search(tmp_path)
    data["passes"] = {"quantize": {"by": "type", "beta": 5.0}}
    with caplog.at_level(logging.WARNING, logger="netcarve.search.session"):
        prepare_search(config(data))
    assert "passes.quantize.beta is not used by the search" in caplog.text
    assert "[search.search_space.pass_config]" in caplog.text


def test_learned_precision_over_batch_norms_warns_that_the_firmware_folds_them(tmp_path: Path, caplog: Any) -> None:
    """digits-cnn has BatchNorm after its first convolution: its learned candidates' firmware folds it and
    requantizes the learned weights, which the search's accuracy does not see; the search says so once, with
    the way to search the folded model instead. The same space with integer quantizers says nothing."""
    from netcarve.search.api import prepare_search

    def space(name: str) -> dict[str, Any]:
        seed = {"default": {"config": {"name": [None]}},
                "conv2d": {"config": {"name": [name], "data_in_width": [8], "weight_width": [8]}}}  # fmt: skip
        data = search_dict(tmp_path, space="graph/quantize/mixed_precision_ptq", seed=seed, model="digits-cnn",
                           dataset="digits")  # fmt: skip
        data["search"]["search_space"]["setup"]["by"] = "type"
        return data

    with caplog.at_level(logging.WARNING, logger="netcarve.search.session"):
        prepare_search(config(space("integer")))
        assert "BatchNorm" not in caplog.text
        prepare_search(config(space("learned")))
    assert caplog.text.count("the base model has BatchNorm layers") == 1
    assert "[passes.fold_batchnorm]" in caplog.text and "--load" in caplog.text


def test_the_best_table_and_the_report_name_the_design_epoch(free: Any) -> None:
    """The console's "Best trial(s)" table and report.html's trial table show the chosen front member
    (design_epoch) of a learned trial."""
    from rich.console import Console

    from netcarve.cli.search import best_table

    (trial,) = trials(free, "COMPLETE")
    console = Console(record=True, width=300)
    console.print(best_table([trial], free.prepared.plan))
    lines = console.export_text().replace("┃", "│").splitlines()
    header, row = [line for line in lines if "│" in line][:2]
    cells = [c.strip() for c in header.split("│")], [c.strip() for c in row.split("│")]
    column = cells[0].index("design_epoch")
    assert cells[1][column] == str(TrialRecord.of(trial).design_epoch)
    assert free.run_dir is not None
    html = (free.run_dir / "report.html").read_text()
    assert f"design: epoch {TrialRecord.of(trial).design_epoch} of its front" in html


def test_a_missing_trial_checkpoint_is_retrained_with_a_warning(tmp_path: Path, caplog: Any) -> None:
    """A retrained trial whose trials/trial-<n>.pt is gone is retrained from its transforms (seeded, as the
    search trained it alone) with a warning naming the file; the learned candidate's design comes back bit for
    bit: its state equals the saved front member of its design epoch."""
    from netcarve.search.api import trial_graph

    session = run_search(config(learned_search(tmp_path)))
    (trial,) = trials(session, "COMPLETE")
    assert session.run_dir is not None
    saved = session.run_dir / "trials" / f"trial-{trial.number}.pt"
    saved.unlink()
    with caplog.at_level(logging.WARNING, logger="netcarve.search.lookup"):
        graph, _ = trial_graph(session.run_dir, trial.number)
    assert f"trial {trial.number} has no checkpoint ({saved})" in caplog.text
    epoch = TrialRecord.of(trial).design_epoch
    member = load_checkpoint(session.run_dir / "trials" / f"trial-{trial.number}-front" / f"epoch-{epoch}.pt")
    for key, value in graph.module.state_dict().items():
        assert torch.equal(value, member.state_dict[key]), key
