"""Batches trained side by side: up to ``num_threads`` lanes share the threads, and progress summed over them.

One batch uses every thread as intra-op threads; several batches run side by side in up to ``num_threads``
lanes that share the threads (2 threads: two lanes of one intra-op thread each; ``keep_going`` is called by
one lane at a time): a batch's elementwise ops and op launches gain little from a second thread, two batches
on two cores gain more. Measured on 2 cores, Lab 4's 36 candidates, 200k rows, three runs each: batches one
after the other at 2 threads 4.8–6.6 s, side by side 3.3–3.9 s.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, TypeVar, cast

import torch

from netcarve.data.base import TensorSplits
from netcarve.train.driver import UnitEpochCallback, UnitKeepGoing
from netcarve.train.loop import TrainConfig, training_threads
from netcarve.train.population.partition import batch_cost
from netcarve.train.population.stack import Group, train_group
from netcarve.train.records import MemberOutcome

log = logging.getLogger(__name__)

#: a callback of the lanes (``keep_going``, ``on_epoch``)
CallbackT = TypeVar("CallbackT", bound=Callable[..., Any])

#: intra-op threads of a batched group unless ``num_threads`` is given: None = every thread torch has (a
#: search's worker processes each get their share, ``OMP_NUM_THREADS``, from the parent). A population's
#: matrix products are large enough to split: measured on 2 cores, one epoch of 200k rows for the 36 Lab 4
#: width candidates of jsc-three-linear-layers (hidden widths 16–96), 2 threads take 4.2–4.3 s, 1 thread
#: 6.2–6.7 s. (With a foreign process busy on the other core, 2 threads are slower: set ``num_threads``.)
DEFAULT_THREADS: int | None = None


def thread_count(requested: int | None) -> int:
    """``requested``, else :data:`DEFAULT_THREADS`, else every thread torch has."""
    if requested is not None:
        return requested
    return DEFAULT_THREADS if DEFAULT_THREADS is not None else torch.get_num_threads()


class Progress:
    """A population's steps summed over its batches and lone members for ``on_step(done, total)``; a unit
    (a batch or a member trained alone) that has not reported yet counts the largest total reported."""

    def __init__(self, units: int, on_step: Callable[[int, int], None]) -> None:
        self.units, self.on_step = units, on_step
        self.done: dict[int, int] = {}
        self.total: dict[int, int] = {}
        self.lock = threading.Lock()

    def unit(self, index: int) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            with self.lock:
                self.done[index], self.total[index] = done, total
                waiting = (self.units - len(self.total)) * max(self.total.values())
                self.on_step(sum(self.done.values()), sum(self.total.values()) + waiting)

        return report


def unit_step(progress: Progress | None, index: int) -> Callable[[int, int], None] | None:
    return None if progress is None else progress.unit(index)


#: the most lane assignments :func:`assign_lanes` tries one by one (lanes ** batches); beyond, longest first
EXHAUSTIVE_ASSIGNMENTS = 4096


def assign_lanes(work: list[float], n: int) -> list[list[int]]:
    """Indices of ``work`` (modelled step times) shared among up to ``n`` lanes so that the most loaded lane's
    total is smallest: every assignment when there are at most :data:`EXHAUSTIVE_ASSIGNMENTS`, else longest
    first to the least loaded lane. Each lane's indices longest first. (Lab 4's five batches of 9.42, 6.99,
    6.01, 5.40, 2.84 on 2 lanes: longest first loads 14.82 / 15.84, the best split 15.43 / 15.23, 2.6 % less
    by the model; end to end the gain is below this machine's run-to-run swing.)"""
    lanes = min(n, len(work))
    order = sorted(range(len(work)), key=lambda i: -work[i])
    if lanes <= 1:
        return [order] if order else []
    if lanes ** len(work) <= EXHAUSTIVE_ASSIGNMENTS:
        best: tuple[float, tuple[int, ...]] | None = None
        for choice in itertools.product(range(lanes), repeat=len(work)):
            loads = [0.0] * lanes
            for i, lane in zip(order, choice, strict=True):
                loads[lane] += work[i]
            if len(set(choice)) == lanes and (best is None or max(loads) < best[0]):  # no lane left empty
                best = (max(loads), choice)
        if best is not None:
            return [[i for i, lane in zip(order, best[1], strict=True) if lane == k] for k in range(lanes)]
    assigned: list[list[int]] = [[] for _ in range(lanes)]
    loads = [0.0] * lanes
    for i in order:
        lane = min(range(lanes), key=lambda k: (loads[k], len(assigned[k])))  # ties: the lane with fewest
        assigned[lane].append(i)
        loads[lane] += work[i]
    return assigned


def _lanes(batched: list[Group], n: int, batch_size: int) -> list[list[Group]]:
    """``batched`` shared among up to ``n`` lanes by their modelled step times (:func:`assign_lanes`)."""
    work = [batch_cost(group.chains[0].key, group.padded, len(group), batch_size) for group in batched]
    return [[batched[i] for i in lane] for lane in assign_lanes(work, n)]


def _one_at_a_time(fn: CallbackT | None, lock: threading.Lock) -> CallbackT | None:
    """``fn`` called under ``lock`` (a callback the lanes share), or None."""
    if fn is None:
        return None
    inner = fn

    def guarded(*args: Any) -> Any:
        with lock:
            return inner(*args)

    return cast(CallbackT, guarded)


def train_side_by_side(
    batched: list[Group],
    threads: int,
    splits: TensorSplits,
    cfg: TrainConfig,
    validate: bool,
    keep_going: UnitKeepGoing | None,
    outcomes: dict[int, MemberOutcome],
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    on_epoch: UnitEpochCallback | None = None,
) -> None:
    """Train the batches in up to ``threads`` lanes at once, the threads shared among them (2 threads: two
    lanes of one): a batch's elementwise ops and launches gain little from a second thread, two batches
    side by side gain from two cores. ``keep_going`` is called by one lane at a time. An error in one lane
    stops the others at their next step and is raised here; so is an interrupt of the waiting caller.
    ``stop`` set stops every lane."""
    lock, stop = threading.Lock(), stop if stop is not None else threading.Event()
    guarded, each = _one_at_a_time(keep_going, lock), _one_at_a_time(on_epoch, lock)
    lanes = _lanes(batched, threads, cfg.batch_size)

    def run(lane: list[Group], own: int) -> None:
        torch.set_num_threads(own)  # this thread's own setting
        for group in lane:
            log.debug("training %d members as one batched model (widths %s, %d of %d threads in %d lanes)",
                      len(group), group.padded, own, threads, len(lanes))  # fmt: skip
            on_step = unit_step(progress, batched.index(group))
            train_group(group, splits, cfg, validate, guarded, outcomes, stop, on_step, each)

    before = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(len(lanes), thread_name_prefix="netcarve-population") as pool:
            # the threads shared among the lanes (2 threads, 3 batches: 2 lanes of 1 thread)
            share = [threads // len(lanes) + (i < threads % len(lanes)) for i in range(len(lanes))]
            futures = [pool.submit(run, lane, own) for lane, own in zip(lanes, share, strict=True)]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)  # an error in any lane ends the wait
                for future in sorted(done, key=lambda f: f.exception() is None):
                    future.result()  # the failed lane's error first
            except BaseException:
                stop.set()
                raise
    finally:
        torch.set_num_threads(before)  # threads started later take the last value set


def train_batches(
    batched: list[Group],
    threads: int,
    splits: TensorSplits,
    cfg: TrainConfig,
    validate: bool,
    keep_going: UnitKeepGoing | None,
    outcomes: dict[int, MemberOutcome],
    progress: Progress | None,
    on_epoch: UnitEpochCallback | None = None,
) -> None:
    """Train the batches side by side (:func:`train_side_by_side`) when there are several and more than one
    thread, else one after the other on ``threads`` intra-op threads; progress unit ``n`` is batch ``n``."""
    if len(batched) > 1 and threads > 1:
        train_side_by_side(batched, threads, splits, cfg, validate, keep_going, outcomes, progress=progress,
                           on_epoch=on_epoch)  # fmt: skip
        return
    for n, group in enumerate(batched):
        log.debug("training %d members as one batched model (widths %s, %d threads)", len(group), group.padded,
                  threads)  # fmt: skip
        with training_threads(group.holder(), threads):
            train_group(group, splits, cfg, validate, keep_going, outcomes, on_step=unit_step(progress, n),
                        on_epoch=on_epoch)  # fmt: skip
