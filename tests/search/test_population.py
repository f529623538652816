"""Population training in a search: K claimed trials trained together give each trial what it gets alone;
a member's failure or early stop is its own; Optuna's pruners stop bad candidates and save steps."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from netcarve.errors import ConfigError, TrainingError
from netcarve.search.api import prepare_search, start_search
from netcarve.search.objective import PRUNER_REASON
from netcarve.search.population import AUTO_MAX, memory_budget, population_size
from tests.search.helpers import config, run_search, search_dict, trials
from tests.search.test_worker_death import GRID_SEED


def accuracies(session: Any) -> dict[str, float]:
    """Accuracy of each configuration (by its digest) among the COMPLETE trials."""
    return {t.user_attrs["config_key"]: t.user_attrs["metric.accuracy"] for t in trials(session, "COMPLETE")}


def test_population_of_12_gives_the_accuracies_of_one_by_one(tmp_path: Path) -> None:
    """The 36-configuration Lab 4 grid, retrained one epoch: with population = 12 (three batched passes of 12)
    every configuration's accuracy is within 0.5 percentage points of its accuracy with population = 1, and
    every trial records the population it trained in."""
    runs = {}
    for size in (1, 12):
        data = search_dict(tmp_path / str(size), seed=GRID_SEED, dataset="synthetic-jsc:3000", population=size)
        runs[size] = run_search(config(data))
    one, twelve = accuracies(runs[1]), accuracies(runs[12])
    assert len(one) == len(twelve) == 36 and one.keys() == twelve.keys()
    worst = max(abs(one[k] - twelve[k]) for k in one)
    assert worst <= 0.005, f"largest accuracy difference {worst:.4f}"
    # each trial records how many candidates trained with it in one batched model (a population of 12 may be
    # cut into batches of similar widths)
    assert {t.user_attrs["population"] for t in trials(runs[1])} == {1}
    assert max(t.user_attrs["population"] for t in trials(runs[12])) > 1
    assert all(1 <= t.user_attrs["population"] <= 12 for t in trials(runs[12]))


def test_a_failing_member_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When one member of a population diverges, its trial is FAIL with the error and the others complete
    with the accuracies they have in a population without it (the same as one by one)."""
    import netcarve.train.population as population

    real = population.fit_population

    def second_diverges(modules: Any, *args: Any, **kwargs: Any) -> Any:
        results = real(modules, *args, **kwargs)
        if len(modules) > 1:
            results[1] = population.MemberOutcome(results[1].result, TrainingError("training diverged: loss is nan"))
        return results

    seed = {"seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2, 3, 4]}}}
    reference = accuracies(run_search(config(search_dict(tmp_path / "ref", seed=seed, population=1))))
    monkeypatch.setattr(population, "fit_population", second_diverges)
    session = run_search(config(search_dict(tmp_path / "pop", seed=seed, population=4)))
    failed = trials(session, "FAIL")
    assert [t.number for t in failed] == [1]
    assert failed[0].user_attrs["error"] == "TrainingError: training diverged: loss is nan"
    done = accuracies(session)
    assert len(done) == 3 and all(done[k] == pytest.approx(reference[k], abs=0.005) for k in done)


def test_a_configuration_repeated_in_one_population_is_trained_once(tmp_path: Path) -> None:
    """Random sampling of a 2-configuration space, 6 trials claimed as one population: the 2 distinct
    configurations are trained (train_steps > 0, no ``reused_from``), the 4 repeats reuse their results."""
    seed = {"seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2]}}}
    data = search_dict(tmp_path, seed=seed, sampler="random", n_trials=6, population=6)
    session = run_search(config(data))
    done = trials(session, "COMPLETE")
    assert len(done) == 6
    trained = [t for t in done if "reused_from" not in t.user_attrs]
    assert len(trained) == len({t.user_attrs["config_key"] for t in done}) == 2
    for t in done:
        if "reused_from" in t.user_attrs:
            source = next(s for s in trained if s.number == t.user_attrs["reused_from"])
            assert t.values == source.values


def test_median_pruner_saves_training_steps(tmp_path: Path) -> None:
    """A 30-trial TPE retraining search (3 epochs each): with the median pruner, trials whose accuracy after
    an epoch is below the median stop there, recorded PRUNED with the epoch and fewer steps than a full
    run, and the search spends fewer training steps in total than without a pruner."""
    seed = {
        "seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2, 3, 4, 5, 6]}},
        "seq_blocks_4": {"config": {"name": ["both"], "channel_multiplier": [1, 2, 3, 4, 5, 6]}},
    }
    steps = {}
    for pruner in ("none", "median"):
        data = search_dict(tmp_path / pruner, seed=seed, sampler="tpe", n_trials=30, pruner=pruner, population=1)
        data["search"]["strategy"]["sw_runner"]["basic_train"].update(max_epochs=3, learning_rate=1e-3)
        session = run_search(config(data))
        everything = trials(session)
        steps[pruner] = sum(t.user_attrs.get("train_steps", 0) for t in everything if "reused_from" not in t.user_attrs)
        if pruner == "median":
            stopped = [t for t in trials(session, "PRUNED") if t.user_attrs["pruned"].startswith(PRUNER_REASON)]
            assert stopped, "the median pruner stopped no trial"
            full = max(t.user_attrs["train_steps"] for t in trials(session, "COMPLETE"))
            for t in stopped:  # pruned_epoch: the epochs it trained (1 or 2 of 3)
                assert t.user_attrs["pruned_epoch"] in (1, 2)
                assert t.user_attrs["train_steps"] == full * t.user_attrs["pruned_epoch"] // 3
                assert f"median): stopped after epoch {t.user_attrs['pruned_epoch']} of 3" in t.user_attrs["pruned"]
    assert steps["median"] < steps["none"]


@pytest.mark.parametrize("population", [1, 4])
def test_training_progress_is_reported(tmp_path: Path, population: int) -> None:
    """``run_study``'s ``on_training(done, total)``: synthetic-jsc:2000 has 1400 training rows, 11 steps of
    128. One by one with basic_train.log_every_n_steps = 5: (5, 11), (10, 11), (11, 11) for each of the 4
    configurations. One population of 4 (every 50 steps, the default, so once per batch, at its end): steps
    summed over its batches, ending with done = total, a multiple of 11."""
    from netcarve.search.api import finish
    from netcarve.search.runner import run_study

    data = search_dict(tmp_path, population=population)
    if population == 1:
        data["search"]["strategy"]["sw_runner"]["basic_train"]["log_every_n_steps"] = 5
    session = start_search(prepare_search(config(data)), None, None)
    calls: list[tuple[int, int]] = []
    run_study(session, 1, None, lambda: None, lambda done, total: calls.append((done, total)))
    finish(session)
    assert len(trials(session, "COMPLETE")) == 4
    if population == 1:
        assert calls == [(5, 11), (10, 11), (11, 11)] * 4
    else:
        assert calls[-1][0] == calls[-1][1] and calls[-1][1] % 11 == 0
        assert all(done <= total for done, total in calls)
        assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_pruned_members_leave_a_population(tmp_path: Path) -> None:
    """With populations (TPE, 24 trials, population 6) the pruner still stops members; a stopped member's
    steps are those of the epochs it trained, while its population's other members train to the end."""
    data = search_dict(tmp_path, sampler="tpe", n_trials=24, pruner="median", population=6, seed=GRID_SEED)
    data["search"]["strategy"]["sw_runner"]["basic_train"].update(max_epochs=3, learning_rate=1e-3)
    session = run_search(config(data))
    stopped = [t for t in trials(session, "PRUNED") if t.user_attrs.get("pruned", "").startswith(PRUNER_REASON)]
    complete = [t for t in trials(session, "COMPLETE") if "reused_from" not in t.user_attrs]
    assert stopped and complete
    full = max(t.user_attrs["train_steps"] for t in complete)
    assert all(t.user_attrs["train_steps"] < full for t in stopped)
    assert any(t.user_attrs["population"] > 1 for t in stopped)
    # trials.csv: a stopped trial's objective column is empty (Optuna keeps its last reported validation
    # accuracy as its value, which is not the objective); its reason names that accuracy
    with (session.run_dir / "trials.csv").open(newline="") as fh:  # type: ignore[operator]
        rows = {int(row["number"]): row for row in csv.DictReader(fh)}
    for t in stopped:
        assert t.values is not None and rows[t.number]["objective"] == ""
        assert f"validation accuracy {t.values[0]:.4f}" in rows[t.number]["pruned"]
    assert all(float(rows[t.number]["objective"]) == t.values[0] for t in complete)


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ({"population": 5}, 5),
        ({"population": "auto", "sampler": "brute_force"}, AUTO_MAX),  # 36 configurations, one worker
        ({"population": "auto", "sampler": "brute_force", "n_jobs": 2}, 18),  # a share per worker
        ({"population": "auto", "sampler": "tpe", "n_trials": 20}, 5),  # a learning sampler: a quarter
        ({"population": "auto", "sampler": "random", "n_trials": 100}, AUTO_MAX),
    ],
)
def test_population_size(tmp_path: Path, setup: dict[str, Any], expected: int) -> None:
    data = search_dict(tmp_path, seed=GRID_SEED, **setup)
    session = start_search(prepare_search(config(data)), None, None)
    assert population_size(session) == expected


def test_eval_mode_has_nothing_to_batch(tmp_path: Path) -> None:
    data = search_dict(tmp_path, space="graph/quantize/mixed_precision_ptq", model="jsc-toy", sampler="random",
                       n_trials=4, eval_mode=True, population=8)  # fmt: skip
    session = start_search(prepare_search(config(data)), None, None)
    assert population_size(session) == 1


def test_memory_budget() -> None:
    """A quarter of the free memory, at most 2 GiB (and 2 GiB when the free memory is unknown)."""
    assert memory_budget(4 * 2**30) == 2**30
    assert memory_budget(64 * 2**30) == 2 * 2**30
    assert memory_budget(None) == 2 * 2**30


def test_auto_population_follows_free_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Free memory for only a few members: auto chooses fewer (at least 1)."""
    import netcarve.device
    from netcarve.search.population import WIDTH_HEADROOM
    from netcarve.train.population import member_bytes

    session = start_search(prepare_search(config(search_dict(tmp_path, sampler="random", n_trials=100))), None, None)
    per_member = member_bytes(session.prepared.base.module, 128) * WIDTH_HEADROOM**2
    monkeypatch.setattr(netcarve.device, "available_memory", lambda device=None: 4 * 3 * per_member)
    assert population_size(session) == 3
    monkeypatch.setattr(netcarve.device, "available_memory", lambda device=None: 0)
    assert population_size(session) == 1


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("population", 0, r"population"),
        ("population", "many", r"population"),
        ("pruner", "medain", r"search\.strategy\.setup\.pruner: unknown pruner 'medain'; did you mean 'median'"),
        ("population", True, r"population"),
    ],
)
def test_bad_population_and_pruner_name_the_key(tmp_path: Path, key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        prepare_search(config(search_dict(tmp_path, **{key: value})))


def test_all_pruners_are_optunas(tmp_path: Path) -> None:
    """Each name builds Optuna's own pruner; hyperband's max resource is the candidates' epochs."""
    from optuna.pruners import HyperbandPruner, MedianPruner, NopPruner, SuccessiveHalvingPruner

    from netcarve.search.pruners import make_pruner

    assert isinstance(make_pruner("none", 3), NopPruner)
    assert isinstance(make_pruner("median", 3), MedianPruner)
    assert isinstance(make_pruner("successive-halving", 3), SuccessiveHalvingPruner)
    hyperband = make_pruner("Hyperband", 7)
    assert isinstance(hyperband, HyperbandPruner) and hyperband._max_resource == 7


def test_a_pruner_needs_a_single_objective(tmp_path: Path) -> None:
    """Optuna prunes by one reported value: a Pareto study (two objectives) with a pruner is refused up front,
    naming the key; with one metric and sum_scaled_metrics = false it is one objective and accepted."""
    two = {"accuracy": {"direction": "maximize"}, "model_size": {"direction": "minimize"}}
    data = search_dict(tmp_path, pruner="median", sum_scaled_metrics=False, metrics=two)
    with pytest.raises(ConfigError, match=r"search\.strategy\.setup\.pruner = 'median' needs a single objective"):
        prepare_search(config(data))
    one = search_dict(tmp_path, pruner="median", sum_scaled_metrics=False)
    assert prepare_search(config(one)).plan.pruner == "median"


def test_an_error_raised_while_interrupted_counts_as_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen under SIGTERM: Optuna's journal lock, released in a ``finally`` after the signal, failed with
    FileNotFoundError, and that trial was recorded FAIL (not run again by --resume). An exception raised
    while an interrupt is handled is the interrupt: the search stops, every untold trial is recorded
    interrupted (stale), none as failed."""
    from netcarve.search.api import prepare_search, start_search
    from netcarve.search.candidate import CandidateEvaluator
    from netcarve.search.runner import run_study

    def finish(self: CandidateEvaluator, *args: Any, **kwargs: Any) -> Any:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise FileNotFoundError("study.journal.lock.rename") from None

    monkeypatch.setattr(CandidateEvaluator, "finish", finish)
    data = search_dict(tmp_path, seed=GRID_SEED, n_trials=4, population=4)
    session = start_search(prepare_search(config(data)), None, None)
    with pytest.raises(KeyboardInterrupt):
        run_study(session, 1, None, lambda: None)
    claimed = [t for t in trials(session) if t.state.name != "WAITING"]
    assert len(claimed) == 4
    assert all(t.state.name == "FAIL" and t.user_attrs.get("stale") is True for t in claimed)
    assert {t.user_attrs["error"] for t in claimed} == {"interrupted"}


def test_an_interrupt_while_claiming_a_population_leaves_no_trial_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the first trial of a population is claimed and before the next: the claimed trial is
    recorded interrupted (stale, redone on resume), not left RUNNING with nobody to run it."""
    from netcarve.search import runner
    from netcarve.search.brute_force import STALE_ATTR

    session = start_search(prepare_search(config(search_dict(tmp_path, population=4))), None, None)
    claim, calls = runner._claim, []

    def interrupted_claim(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return claim(*args)

    monkeypatch.setattr(runner, "_claim", interrupted_claim)
    with pytest.raises(KeyboardInterrupt):
        runner.run_study(session, 1, None, lambda: None)
    (trial,) = [t for t in trials(session) if t.state.name != "WAITING"]
    assert trial.state.name == "FAIL" and trial.user_attrs[STALE_ATTR] is True
    assert trial.user_attrs["error"] == "interrupted"


def test_a_second_signal_while_abandoning_still_records_the_rest(tmp_path: Path) -> None:
    """Three claimed trials abandoned; a second Ctrl-C arrives while the first is recorded: the other two are
    still recorded interrupted (stale), then the KeyboardInterrupt goes on."""
    from netcarve.search.brute_force import STALE_ATTR

    session = start_search(prepare_search(config(search_dict(tmp_path))), None, None)
    runner = session.runner()
    claimed = [session.study.ask() for _ in range(3)]
    interrupted, calls = runner._interrupted, []

    def second_signal(trial: Any, start: float) -> None:
        calls.append(trial.number)
        if len(calls) == 1:
            raise KeyboardInterrupt
        interrupted(trial, start)

    runner._interrupted = second_signal  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        runner.abandon(claimed)
    states = {t.number: t for t in trials(session)}
    assert calls == [t.number for t in claimed]
    for trial in claimed[1:]:
        assert states[trial.number].state.name == "FAIL" and states[trial.number].user_attrs[STALE_ATTR] is True


def test_a_signal_during_a_claim_and_during_abandoning_leaves_no_trial_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGINT arrives while the second trial of a population is claimed (deferred until the claim is
    recorded), and another while the first claimed trial is recorded interrupted (deferred until all are):
    both claimed trials end FAIL and stale, none RUNNING, and the KeyboardInterrupt goes on."""
    import os
    import signal

    from netcarve.search import runner
    from netcarve.search.brute_force import STALE_ATTR
    from netcarve.search.objective import TrialRunner

    session = start_search(prepare_search(config(search_dict(tmp_path, population=4))), None, None)
    claim_waiting, claims = runner.claim_waiting, []

    def claim_then_signal(*args: Any) -> Any:
        trial = claim_waiting(*args)
        claims.append(trial)
        if len(claims) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # deferred: the claim completes first
        return trial

    interrupted, recorded = TrialRunner._interrupted, []

    def record_then_signal(self: TrialRunner, trial: Any, start: float) -> None:
        recorded.append(trial.number)
        if len(recorded) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # deferred: every trial is recorded first
        interrupted(self, trial, start)

    monkeypatch.setattr(runner, "claim_waiting", claim_then_signal)
    monkeypatch.setattr(TrialRunner, "_interrupted", record_then_signal)
    with pytest.raises(KeyboardInterrupt):
        runner.run_study(session, 1, None, lambda: None)
    touched = [t for t in trials(session) if t.state.name != "WAITING"]
    assert len(touched) == 2 and len(recorded) == 2
    assert all(t.state.name == "FAIL" and t.user_attrs[STALE_ATTR] is True for t in touched)
