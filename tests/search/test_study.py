"""Studies end to end in this process: fresh metrics per trial, independent trials, reuse, failures, brute force."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netcarve.errors import SearchError
from netcarve.search.api import prepare_search, trial_graph
from netcarve.search.candidate import CandidateEvaluator
from netcarve.search.record import TrialRecord
from netcarve.search.session import Prepared
from tests.search.helpers import config, run_search, search_dict, trials

QUANT = "graph/quantize/mixed_precision_ptq"


@pytest.fixture
def ptq(tmp_path: Path) -> Prepared:
    data = search_dict(tmp_path, space=QUANT, model="jsc-toy", sampler="random", n_trials=6, eval_mode=True)
    data["search"]["strategy"]["metrics"] = {"accuracy": {"direction": "maximize"}, "loss": {"direction": "minimize"}}
    return prepare_search(config(data))


def test_metrics_are_fresh_per_candidate_and_reproducible(ptq: Prepared) -> None:
    """A configuration gives the same metrics alone, after others, and twice (retraining included)."""
    space, plan = ptq.space, ptq.plan
    target = space.transforms(space.point(3))
    others = [space.transforms(space.point(i)) for i in (0, 7, 11)]
    for retrain in (False, True):
        alone = CandidateEvaluator(ptq.base, ptq.splits, plan, retrain).evaluate(target).metrics  # type: ignore[arg-type]
        evaluator = CandidateEvaluator(ptq.base, ptq.splits, plan, retrain)  # type: ignore[arg-type]
        for t in others:
            evaluator.evaluate(t)
        assert evaluator.evaluate(target).metrics == alone
        assert evaluator.evaluate(target).metrics == alone


def test_trials_do_not_touch_the_base_graph(tmp_path: Path) -> None:
    cfg = config(search_dict(tmp_path, space=QUANT, model="jsc-toy", sampler="random", n_trials=4))
    prepared = prepare_search(cfg)
    before = {k: v.clone() for k, v in prepared.base.module.state_dict().items()}
    from netcarve.search.api import start_search
    from netcarve.search.runner import run_study

    session = start_search(prepared, None, None)
    run_study(session, 1, None, lambda: None)
    after = session.prepared.base.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert sum(t.user_attrs["train_steps"] > 0 for t in trials(session, "COMPLETE")) >= 1


def test_repeated_configuration_is_reused_not_reevaluated(tmp_path: Path) -> None:
    seed = {
        "default": {"config": {"name": [None]}},
        "seq_blocks_2": {"config": {"name": ["integer"], "weight_width": [4, 8]}},
    }
    data = search_dict(tmp_path, space=QUANT, seed=seed, model="jsc-toy", sampler="random", n_trials=6, eval_mode=True)
    session = run_search(config(data))
    done = trials(session, "COMPLETE")
    assert len(done) == 6
    reused = [t for t in done if "reused_from" in t.user_attrs]
    assert len(reused) == 4  # only two distinct configurations exist
    by_number = {t.number: t for t in done}
    for t in reused:
        source = by_number[t.user_attrs["reused_from"]]
        assert t.params == source.params and t.values == source.values
        assert TrialRecord.of(t).metrics == TrialRecord.of(source).metrics


def test_sum_mode_value_is_hand_computable_from_the_trials_metrics(tmp_path: Path) -> None:
    metrics = {
        "accuracy": {"scale": 1.0, "direction": "maximize"},
        "model_size": {"scale": 0.001, "direction": "minimize"},
    }
    data = search_dict(
        tmp_path, space=QUANT, model="jsc-toy", sampler="tpe", n_trials=3, eval_mode=True, metrics=metrics
    )
    session = run_search(config(data))
    for t in trials(session, "COMPLETE"):
        m = TrialRecord.of(t).metrics
        assert t.value == pytest.approx(m["accuracy"] - 0.001 * m["model_size"])
        assert t.user_attrs["scaled_metrics"] == pytest.approx(
            {"accuracy": m["accuracy"], "model_size": -0.001 * m["model_size"]}
        )  # sign·scale·metric: the terms of the sum
        assert sum(t.user_attrs["scaled_metrics"].values()) == pytest.approx(t.value, rel=1e-12, abs=1e-12)


def test_failing_trial_is_recorded_and_the_study_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netcarve.errors import PassError
    from netcarve.search import candidate

    real = candidate.CandidateEvaluator.train

    def fail_at_two(self: CandidateEvaluator, graph):  # type: ignore[no-untyped-def]
        if graph.module.get_submodule("seq_blocks.2").out_features == 32:  # multiplier 2
            raise PassError("cannot train this candidate")
        return real(self, graph)

    monkeypatch.setattr(candidate.CandidateEvaluator, "train", fail_at_two)
    seed = {"default": {"config": {"name": [None]}},
            "seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2, 3]}}}  # fmt: skip
    session = run_search(config(search_dict(tmp_path, seed=seed, n_trials=None, population=1)))
    failed = trials(session, "FAIL")
    assert len(failed) == 1 and failed[0].params == {"seq_blocks_2/channel_multiplier": 2}
    assert failed[0].user_attrs["error"] == "PassError: cannot train this candidate"
    assert [t.number for t in trials(session, "COMPLETE")] == [0, 2]
    csv_text = (session.run_dir / "trials.csv").read_text()  # type: ignore[operator]
    assert "FAIL" in csv_text and "cannot train this candidate" in csv_text


def test_nan_training_fails_the_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netcarve.errors import TrainingError
    from netcarve.search import candidate

    real = candidate.CandidateEvaluator.train

    def diverge(self: CandidateEvaluator, graph):  # type: ignore[no-untyped-def]
        if graph.module.get_submodule("seq_blocks.2").out_features == 32:
            raise TrainingError("training diverged: loss is nan in epoch 0")
        return real(self, graph)

    monkeypatch.setattr(candidate.CandidateEvaluator, "train", diverge)
    session = run_search(config(search_dict(tmp_path, population=1)))
    assert len(trials(session, "FAIL")) == 2 and len(trials(session, "COMPLETE")) == 2
    assert all("loss is nan" in t.user_attrs["error"] for t in trials(session, "FAIL"))


def test_architecture_constraint_prunes_before_training(tmp_path: Path) -> None:
    data = search_dict(tmp_path)
    data["search"]["constraints"] = {"params": {"max": 700}}
    session = run_search(config(data))
    pruned = trials(session, "PRUNED")  # 661 params at multipliers (1, 1); every wider candidate has more
    assert [t.params for t in trials(session, "COMPLETE")] == [
        {"seq_blocks_2/channel_multiplier": 1, "seq_blocks_4/channel_multiplier": 1}
    ]
    assert len(pruned) == 3
    assert all(t.user_attrs["train_steps"] == 0 and "params = " in t.user_attrs["pruned"] for t in pruned)
    best = __import__("json").loads((session.run_dir / "best.json").read_text())  # type: ignore[operator]
    assert [b["number"] for b in best["best"]] and all(b["state"] == "COMPLETE" for b in best["best"])


def test_infeasible_trials_are_never_best(tmp_path: Path) -> None:
    """accuracy ≤ 0.05 can never hold: no trial is feasible, so none is reported as best."""
    data = search_dict(tmp_path, space=QUANT, model="jsc-toy", sampler="tpe", n_trials=3, eval_mode=True)
    data["search"]["constraints"] = {"accuracy": {"max": 0.05}}
    session = run_search(config(data))
    assert len(trials(session, "COMPLETE")) == 3
    assert all(t.constraints["accuracy"] > 0 for t in trials(session, "COMPLETE"))
    assert not (session.run_dir / "best.pt").exists()  # type: ignore[operator]
    with pytest.raises(
        SearchError,
        match=r"none of its 3 complete trial\(s\) \(repeats not counted\) satisfies the constraints.*--trial N",
    ):
        trial_graph(session.run_dir, None)  # type: ignore[arg-type]


def test_a_run_without_best_pt_says_why(tmp_path: Path) -> None:
    """Exporting the best trial of a run dir without best.pt says why, from best.json's ``finished``: a
    finished run whose best.pt is gone (--resume writes it again); the same run as an interrupt leaves it
    (not finished: --resume); a finished run whose every trial was pruned (nothing to export); interrupted
    with complete trials none of which is feasible (--resume or --trial N)."""
    from netcarve.search.api import finish_interrupted

    session = run_search(config(search_dict(tmp_path / "a")))
    (session.run_dir / "best.pt").unlink()  # type: ignore[operator]
    with pytest.raises(SearchError, match=r"has no best.pt: it was removed or never written: --resume writes it"):
        trial_graph(session.run_dir, None)  # type: ignore[arg-type]
    finish_interrupted(session)
    with pytest.raises(SearchError, match=r"has no best.pt: the search has not finished; finish it with --resume"):
        trial_graph(session.run_dir, None)  # type: ignore[arg-type]

    data = search_dict(tmp_path / "b")
    data["search"]["constraints"] = {"model_size": {"max": 1}}  # every candidate has more than 1 parameter
    session = run_search(config(data))
    assert len(trials(session, "PRUNED")) == 4
    with pytest.raises(SearchError, match=r"the search finished with no complete trial .*nothing to export"):
        trial_graph(session.run_dir, None)  # type: ignore[arg-type]

    data = search_dict(tmp_path / "c", space=QUANT, model="jsc-toy", sampler="tpe", n_trials=2, eval_mode=True)
    data["search"]["constraints"] = {"accuracy": {"max": 0.05}}
    session = run_search(config(data))
    finish_interrupted(session)
    with pytest.raises(SearchError, match=r"not finished, and none of its 2 complete trial\(s\) so far .*--resume"):
        trial_graph(session.run_dir, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_brute_force_visits_each_configuration_once(tmp_path: Path, n_jobs: int) -> None:
    session = run_search(config(search_dict(tmp_path, n_jobs=n_jobs)), n_jobs=n_jobs)
    everything = trials(session)
    assert len(everything) == 4 and all(t.state.name == "COMPLETE" for t in everything)
    assert sorted(t.user_attrs["grid_id"] for t in everything) == [0, 1, 2, 3]
    assert len({tuple(sorted(t.params.items())) for t in everything}) == 4
    assert all(t.user_attrs["train_steps"] > 0 for t in everything)
    if n_jobs == 2:
        assert len({t.user_attrs["worker"] for t in everything}) >= 1
        assert (session.run_dir / "worker-1.log").exists()  # type: ignore[operator]
    assert (session.run_dir / "best.pt").is_file()  # type: ignore[operator]


@pytest.mark.parametrize(("text", "message"), [("{", "cannot read .*manifest.json"), ("[]", "names no study")])
def test_a_corrupt_manifest_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(SearchError, match=message):
        trial_graph(tmp_path, None)


def test_a_manifest_of_wrong_types_names_no_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """storage 5 and name [] are not a study: an error, and no file named '5' is made in the cwd."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "manifest.json").write_text('{"study": {"storage": 5, "name": []}}')
    with pytest.raises(SearchError, match="names no study"):
        trial_graph(tmp_path, None)
    assert not (tmp_path / "5").exists()


def test_a_relative_storage_path_is_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--storage rel.journal: the manifest names the absolute path, so the run works from any cwd."""
    import json

    from netcarve.search.api import start_search

    monkeypatch.chdir(tmp_path)
    session = start_search(prepare_search(config(search_dict(tmp_path))), "rel.journal", None)
    manifest = json.loads((session.run_dir / "manifest.json").read_text())  # type: ignore[operator]
    assert manifest["study"]["storage"] == str(tmp_path.resolve() / "rel.journal")
