"""Pruner registry (``setup.pruner``; names match ignoring case, ``-`` and ``_``): Optuna's own pruners.

A retrained candidate reports its validation accuracy after every epoch (``trial.report(accuracy, epoch)``);
the study's pruner decides from those reports whether to stop it (``trial.should_prune()``). A stopped
trial is recorded PRUNED with the epoch it stopped after (``pruned_epoch``) and the steps it trained; in a
population it leaves the batch, so its compute stops (:mod:`netcarve.train.population`). Candidates that are
not retrained (eval mode) report nothing and are never pruned by a pruner.

- ``none`` (default): every candidate trains to the end.
- ``median``: stop a trial whose accuracy after an epoch is below the median of earlier trials' accuracies
  after the same epoch (``MedianPruner``; it starts once 5 trials are complete).
- ``successive_halving``: asynchronous successive halving (``SuccessiveHalvingPruner``).
- ``hyperband``: Hyperband over successive-halving brackets (``HyperbandPruner``, ``max_resource`` = the
  candidates' epochs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netcarve.registry import Registry, loose_key

if TYPE_CHECKING:
    from optuna.pruners import BasePruner


@dataclass(frozen=True)
class PrunerEntry:
    """``make(max_epochs)``: a fresh pruner for candidates trained ``max_epochs`` epochs."""

    make: Callable[[int], BasePruner]


PRUNERS: Registry[PrunerEntry] = Registry("pruner", normalize=loose_key)


def _none(max_epochs: int) -> BasePruner:
    from optuna.pruners import NopPruner

    return NopPruner()


def _median(max_epochs: int) -> BasePruner:
    from optuna.pruners import MedianPruner

    return MedianPruner()


def _successive_halving(max_epochs: int) -> BasePruner:
    from optuna.pruners import SuccessiveHalvingPruner

    return SuccessiveHalvingPruner()


def _hyperband(max_epochs: int) -> BasePruner:
    from optuna.pruners import HyperbandPruner

    return HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1))


PRUNERS.add("none", PrunerEntry(_none), description="no early stopping (default)")
PRUNERS.add("median", PrunerEntry(_median), description="stop below the median of earlier trials at the same epoch")
PRUNERS.add("successive_halving", PrunerEntry(_successive_halving), description="asynchronous successive halving")
PRUNERS.add("hyperband", PrunerEntry(_hyperband), description="Hyperband (successive-halving brackets)")


def make_pruner(name: str, max_epochs: int) -> BasePruner:
    """A fresh pruner ``name`` (a registered name or alias) for candidates trained ``max_epochs`` epochs."""
    return PRUNERS.get(name).make(max_epochs)


def prunes(name: str) -> bool:
    """Whether pruner ``name`` can stop a trial (so candidates must report their accuracy every epoch)."""
    return PRUNERS.canonical(name) != "none"
