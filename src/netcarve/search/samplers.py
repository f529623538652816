"""Sampler registry (names match ignoring case, ``-`` and ``_``): every sampler is seeded from the config.

Constraints reach the samplers through the trials (``trial.set_constraint``, Optuna 5's replacement of
``constraints_func``): TPE, NSGA-II, NSGA-III and GP steer away from infeasible trials; the others ignore them.

``brute_force`` is not an Optuna sampler here: the configurations are enqueued in canonical order and each
is handed out once through the study's storage (see :mod:`netcarve.search.brute_force`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netcarve.registry import Registry, loose_key

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler


@dataclass(frozen=True)
class SamplerEntry:
    """``make(seed)``; ``takes_constraints``: uses trial constraints; ``enumerates``: each point once, in order;
    ``learns``: later points depend on earlier results (so a population must not ask for all of them at once)."""

    make: Callable[[int], BaseSampler]
    takes_constraints: bool = False
    enumerates: bool = False
    learns: bool = False


SAMPLERS: Registry[SamplerEntry] = Registry("sampler", normalize=loose_key)


def _random(seed: int) -> BaseSampler:
    from optuna.samplers import RandomSampler

    return RandomSampler(seed=seed)


def _tpe(seed: int) -> BaseSampler:
    from optuna.samplers import TPESampler

    # constant_liar: trials still running (a population's other members, other workers) count as bad
    # results, so K asks in a row do not collapse on one point
    return TPESampler(seed=seed, constant_liar=True)


def _nsgaii(seed: int) -> BaseSampler:
    from optuna.samplers import NSGAIISampler

    return NSGAIISampler(seed=seed)


def _nsgaiii(seed: int) -> BaseSampler:
    from optuna.samplers import NSGAIIISampler

    return NSGAIIISampler(seed=seed)


def _qmc(seed: int) -> BaseSampler:
    from optuna.samplers import QMCSampler, RandomSampler

    # categorical parameters are sampled by the independent sampler (QMC covers numeric ones)
    return QMCSampler(seed=seed, independent_sampler=RandomSampler(seed=seed), warn_independent_sampling=False)


def _gp(seed: int) -> BaseSampler:
    from optuna.samplers import GPSampler

    return GPSampler(seed=seed)


SAMPLERS.add("random", SamplerEntry(_random), description="uniform random sampling")
SAMPLERS.add(
    "tpe", SamplerEntry(_tpe, takes_constraints=True, learns=True), description="tree-structured Parzen estimator"
)
SAMPLERS.add(
    "nsgaii", SamplerEntry(_nsgaii, takes_constraints=True, learns=True), description="NSGA-II genetic algorithm"
)
SAMPLERS.add(
    "nsgaiii", SamplerEntry(_nsgaiii, takes_constraints=True, learns=True), description="NSGA-III genetic algorithm"
)
SAMPLERS.add("qmc", SamplerEntry(_qmc), description="quasi-Monte Carlo (categorical leaves: random)")
SAMPLERS.add(
    "gp", SamplerEntry(_gp, takes_constraints=True, learns=True), description="Gaussian-process Bayesian optimisation"
)
SAMPLERS.add(
    "brute_force",
    SamplerEntry(_random, enumerates=True),
    description="every configuration once, in canonical order (also bruteforce, brute-force)",
)


def make_sampler(name: str, seed: int) -> BaseSampler:
    """A fresh sampler seeded with ``seed``."""
    from optuna.exceptions import ExperimentalWarning

    entry = SAMPLERS.get(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return entry.make(seed)
