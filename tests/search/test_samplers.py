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


@pytest.mark.parametrize("name", SAMPLERS.names())
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
