"""Every registered sampler runs a tiny study; the same seed gives the same TPE suggestions."""

from __future__ import annotations

import optuna
import pytest

from netcarve.search.samplers import SAMPLERS, make_sampler
from netcarve.search.spaces import Param, SearchSpace
from netcarve.search.spaces.base import EntrySpace, PassSpace

PARAMS = (Param("a/x", (1, 2, 3, 4)), Param("b/y", (0.5, 1.0, 2.0)), Param("c/z", ("p", "q")))


def toy_space() -> SearchSpace:
    entry = EntrySpace("n", {}, tuple((p.name, p) for p in PARAMS))
    return SearchSpace("toy", (PassSpace("toy", "name", EntrySpace("default", {}), (entry,)),))


def score(point: dict) -> float:
    return point["a/x"] * point["b/y"] + (1.0 if point["c/z"] == "q" else 0.0)


def run(sampler: str, seed: int, n: int, directions: list[str]) -> list[dict]:
    space = toy_space()
    study = optuna.create_study(directions=directions, sampler=make_sampler(sampler, seed))
    points = []
    for _ in range(n):
        trial = study.ask()
        point = space.suggest(trial)
        points.append(point)
        values = [score(point)] if len(directions) == 1 else [score(point), point["a/x"]]
        study.tell(trial, values)
    return points


@pytest.mark.parametrize("name", [n for n in SAMPLERS.names() if not SAMPLERS.get(n).enumerates])
def test_every_sampler_runs_a_tiny_study(name: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    points = run(name, 0, 4, ["maximize"])
    assert len(points) == 4 and all(set(p) == {"a/x", "b/y", "c/z"} for p in points)
    if name in ("nsgaii", "nsgaiii", "tpe", "random"):
        assert len(run(name, 0, 3, ["maximize", "minimize"])) == 3


def test_same_seed_same_tpe_suggestions() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    first = run("tpe", 7, 14, ["maximize"])  # beyond TPE's 10 startup trials
    assert first == run("tpe", 7, 14, ["maximize"])
    assert first != run("tpe", 8, 14, ["maximize"])


def test_brute_force_enumerates_every_configuration_once_in_canonical_order() -> None:
    """Brute force is an enumeration, not a sampler: the 4 · 3 · 2 = 24 configurations are queued and handed
    out in canonical (mixed-radix, last parameter fastest) order — configuration 0 is (1, 0.5, 'p'),
    1 is (1, 0.5, 'q'), 2 is (1, 1.0, 'p'), 23 is (4, 2.0, 'q') — each exactly once; then nothing is left."""
    import itertools

    from netcarve.search.brute_force import claim_waiting, enqueue_missing

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = toy_space()
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    assert enqueue_missing(study, space, space.size) == 24
    claimed = []
    while (trial := claim_waiting(study, storage)) is not None:
        claimed.append(space.suggest(trial))
        study.tell(trial, 0.0)
    expected = [
        dict(zip(("a/x", "b/y", "c/z"), combo, strict=True))
        for combo in itertools.product(*(p.choices for p in PARAMS))
    ]
    assert claimed == expected
    assert claimed[:3] == [{"a/x": 1, "b/y": 0.5, "c/z": "p"}, {"a/x": 1, "b/y": 0.5, "c/z": "q"},
                           {"a/x": 1, "b/y": 1.0, "c/z": "p"}]  # fmt: skip
    assert enqueue_missing(study, space, space.size) == 0  # every configuration is held: none queued again
