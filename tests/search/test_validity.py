"""Issue 9 item 5: acceptance does not depend on the order of the choices. A choice invalid in every
configuration is rejected up front, naming it; a configuration invalid only jointly is PRUNED with the
reason before any training, whatever the order."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import pytest

from netcarve.errors import ConfigError, NetcarveError, PassError
from netcarve.search import validity
from netcarve.search.api import prepare_search
from netcarve.search.candidate import CandidateEvaluator
from netcarve.search.record import TrialRecord
from netcarve.search.spaces import EntrySpace, Param, PassSpace, SearchSpace, Transforms
from tests.search.helpers import config, run_search, search_dict, trials

QUANT = "graph/quantize/mixed_precision_ptq"
NO_ROOM = "width 4 has no room for a sign and 5 exponent bits"


def minifloat(tmp_path: Path, widths: list[int], exponents: list[int], **kwargs: Any) -> dict[str, Any]:
    """seq_blocks_2's weights as minifloat: a width of 4 has no room for 5 exponent bits (plus a sign)."""
    leaves = {"name": ["minifloat_ieee"], "weight_width": widths, "weight_exponent_width": exponents}
    seed = {"default": {"config": {"name": [None]}}, "seq_blocks_2": {"config": leaves}}
    return search_dict(tmp_path, space=QUANT, seed=seed, model="jsc-toy", **kwargs)


def outcome(session: Any) -> tuple[set[tuple[Any, ...]], dict[tuple[Any, ...], dict[str, float]]]:
    """(pruned configurations with their reasons, completed configurations with their metrics)."""
    key = lambda t: tuple(sorted(t.params.items()))  # noqa: E731
    pruned = {(*key(t), t.user_attrs["pruned"]) for t in trials(session, "PRUNED")}
    done = {key(t): TrialRecord.of(t).metrics for t in trials(session, "COMPLETE")}
    return pruned, done


def test_the_order_of_the_choices_does_not_change_the_outcome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list[int] = []
    real = CandidateEvaluator.train

    def counting(self: CandidateEvaluator, graph: Any) -> int:
        trained.append(1)
        return real(self, graph)

    monkeypatch.setattr(CandidateEvaluator, "train", counting)
    outcomes = []
    for i, widths in enumerate(([4, 8], [8, 4])):  # the first order's first configuration is the invalid one
        trained.clear()
        session = run_search(config(minifloat(tmp_path / str(i), widths, [5, 3], population=1)))
        assert len(trials(session)) == 4 and not trials(session, "FAIL")
        assert len(trained) == 3  # the invalid configuration is never trained
        outcomes.append(outcome(session))
        assert trials(session, "PRUNED")[0].user_attrs["train_steps"] == 0
        assert session.run_dir is not None
        csv_text = (session.run_dir / "trials.csv").read_text()
        assert f"invalid configuration: node 'seq_blocks_2', weight: minifloat_ieee: {NO_ROOM}" in csv_text
    assert outcomes[0] == outcomes[1]
    pruned, done = outcomes[0]
    [(width, exponent, reason)] = pruned
    assert (width, exponent) == (("seq_blocks_2/weight_exponent_width", 5), ("seq_blocks_2/weight_width", 4))
    assert reason.startswith("invalid configuration: ") and NO_ROOM in reason
    assert len(done) == 3


def test_a_choice_invalid_in_every_configuration_is_rejected_naming_it(tmp_path: Path) -> None:
    """A width of 2 has no room for 3 or 5 exponent bits; 4 fits 3 bits and is accepted."""
    with pytest.raises(ConfigError, match="invalid in every configuration") as info:
        prepare_search(config(minifloat(tmp_path, [4, 8, 2], [5, 3])))
    message = str(info.value)
    assert "seq_blocks_2/weight_width = 2" in message and "width 2 has no room" in message
    assert "weight_width = 4" not in message
    assert isinstance(info.value.__cause__, NetcarveError)


def test_a_space_without_any_valid_configuration_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no configuration of the space is valid") as info:
        prepare_search(config(minifloat(tmp_path, [2, 4], [5])))
    assert "width 2 has no room" in str(info.value)


def test_nearest_first_visits_every_configuration_with_the_choice_once() -> None:
    sizes, start = (2, 3, 2), (1, 0, 1)
    seen = list(validity.nearest_first(sizes, start, 1, 2))
    assert seen[0] == (1, 2, 1)
    assert sorted(seen) == [(a, 2, c) for a in range(2) for c in range(2)]
    distances = [sum(x != y for i, (x, y) in enumerate(zip(s, start, strict=True)) if i != 1) for s in seen]
    assert distances == sorted(distances)


def fake_space(n_params: int, n_choices: int) -> SearchSpace:
    params = tuple(Param(f"p{i}", tuple(range(n_choices))) for i in range(n_params))
    entry = EntrySpace("e", {}, tuple((p.name, p) for p in params))
    return SearchSpace("fake", (PassSpace("fake", "name", EntrySpace("default", {}), (entry,)),))


def fake_rule(invalid: Any) -> Any:
    """A try_build that rejects the configurations ``invalid(values)`` holds for; counts its calls."""
    calls: list[tuple[int, ...]] = []

    def build(base: Any, transforms: Transforms) -> Any:
        values = tuple(transforms[0][1]["e"]["config"][f"p{i}"] for i in range(len(transforms[0][1]["e"]["config"])))
        calls.append(values)
        return PassError(f"bad {values}") if invalid(values) else object()

    build.calls = calls  # type: ignore[attr-defined]
    return build


def test_joint_invalidity_in_a_large_space_is_resolved_cheaply(monkeypatch: pytest.MonkeyPatch) -> None:
    """5 parameters × 4 choices (1024 configurations); p0 = 3 is valid only with p4 = 2."""
    build = fake_rule(lambda v: v[0] == 3 and v[4] != 2)
    monkeypatch.setattr(validity, "try_build", build)
    validity.check_choices(fake_space(5, 4), None)  # type: ignore[arg-type]
    assert len(build.calls) <= 1 + 5 * 3 + 4 * 3  # one per choice, plus one change of each other parameter


def test_invalid_everywhere_is_proven_by_trying_all_or_only_warned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    space = fake_space(3, 3)  # 9 configurations hold p0 = 2: all are tried
    monkeypatch.setattr(validity, "try_build", fake_rule(lambda v: v[0] == 2))
    with pytest.raises(ConfigError, match=r"p0 = 2 \(bad \(2, 0, 0\)\)"):
        validity.check_choices(space, None)  # type: ignore[arg-type]
    monkeypatch.setattr(validity, "try_build", fake_rule(lambda v: v[0] == 2))
    with caplog.at_level(logging.WARNING, logger="netcarve.search.validity"):
        validity.check_choices(space, None, max_tries=4)  # type: ignore[arg-type]  # bounded: not a proof
    assert "no valid configuration with p0 = 2 among the 4 tried" in caplog.text


RULES = [
    lambda v: (v[0] + v[1]) % 3 == 0 or (v[2] == 1 and v[0] == 0),  # jointly invalid only
    lambda v: v[2] == 2 or (v[0] + v[1]) % 3 == 0,  # p2 = 2 never valid
    lambda v: v[0] != 1 or v[1] == 0,  # p0 = 0, p0 = 2 and p1 = 0 never valid
]


@pytest.mark.parametrize("rule", RULES)
def test_exactly_the_choices_no_valid_configuration_holds_are_rejected(
    monkeypatch: pytest.MonkeyPatch, rule: Any
) -> None:
    space = fake_space(3, 3)
    valid = [v for v in itertools.product(range(3), repeat=3) if not rule(v)]
    never = {(i, c) for i in range(3) for c in range(3)} - {(i, v[i]) for v in valid for i in range(3)}
    monkeypatch.setattr(validity, "try_build", fake_rule(rule))
    if not never:
        validity.check_choices(space, None)  # type: ignore[arg-type]
        return
    with pytest.raises(ConfigError) as info:
        validity.check_choices(space, None)  # type: ignore[arg-type]
    named = {(i, c) for i in range(3) for c in range(3) if f"p{i} = {c} (" in str(info.value)}
    assert named == never
