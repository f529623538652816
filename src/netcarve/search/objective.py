"""One trial, driven by ask/tell: suggest → reuse or evaluate → record user attributes → tell.

Recorded on every trial: its :class:`~netcarve.search.record.TrialRecord` (user attributes, each metric
once as ``metric.<name>``; ``scaled_metrics``: each objective metric's term, sign·scale·metric in sum mode,
so they add up to the trial's value; scale·metric in a Pareto study, as MASE showed them); ``reused_from``
on a trial that reused the result of an earlier identical configuration (found through
:class:`~netcarve.search.repeats.RepeatIndex`, by configuration key); one Optuna constraint per
``[search.constraints]`` entry (``trial.set_constraint(metric, violation)``, ≤ 0 feasible: the samplers that
handle constraints — TPE, NSGA-II/III, GP — read them from the trial; Optuna 5 deprecates
``constraints_func`` for this); ``pruned`` with the reason on a trial pruned by an architecture constraint
or because its configuration is invalid (before any training).

A failed trial keeps its diagnosis: ``error`` (type and message), ``traceback`` (the full text) and, with a
run dir, ``log`` (``trials/trial-<n>.log``, the same text). A bad candidate — netcarve's own errors
(:class:`~netcarve.errors.NetcarveError`, e.g. training diverged) and numeric failures — fails its trial;
any other exception is a bug in netcarve: the trial fails too, with ``internal_error = true``, an error is
logged at once and again when the results are written. The study goes on in both cases.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import platform
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from netcarve import outcomes
from netcarve.errors import NetcarveError, SearchError
from netcarve.search.candidate import Built, CandidateEvaluator, Outcome
from netcarve.search.plan import SearchPlan, objective_names, objective_values, scaled_metrics
from netcarve.search.record import TrialRecord, write
from netcarve.search.repeats import RepeatIndex
from netcarve.search.spaces import SearchSpace, transforms_key

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from netcarve.train.loop import EpochRecord
    from netcarve.train.population import KeepGoing

log = logging.getLogger(__name__)

#: exceptions that make a candidate bad (its trial fails, nothing to fix in netcarve); anything else is a bug
BAD_CANDIDATE: tuple[type[Exception], ...] = (NetcarveError, FloatingPointError)


def _raise_interrupt(exc: BaseException) -> None:
    """Raise the interrupt (Ctrl-C, SIGTERM) ``exc`` was raised while handling, if any: e.g. a lock file
    released in a ``finally`` after the signal fails with FileNotFoundError, which must not pass for the
    trial's own failure (a failed trial is not run again; an interrupted one is)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            raise cause from exc  # the error that replaced it, for --verbose
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__


def trial_checkpoint(directory: Path, number: int) -> Path:
    return directory / f"trial-{number}.pt"


def trial_log(directory: Path, number: int) -> Path:
    """A failed trial's error and traceback, next to the trial checkpoints."""
    return directory / f"trial-{number}.log"


def worker_id() -> str:
    return f"{platform.node()}:{os.getpid()}"


def config_digest(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def name_objectives(study: optuna.Study, plan: SearchPlan) -> None:
    """Store the objectives' names in the study (``study.metric_names``), for plain Optuna clients."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        study.set_metric_names(objective_names(plan))


def violations(plan: SearchPlan, metrics: Mapping[str, float]) -> dict[str, float]:
    """Each constraint's violation (≤ 0: satisfied); a metric not measured (trial pruned early) counts 0."""
    return outcomes.violations(plan.constraints, metrics)


def is_feasible(trial: FrozenTrial) -> bool:
    """Every constraint satisfied (Optuna's ``trial.constraints``, read by TPE, NSGA-II/III and GP too)."""
    return outcomes.feasible(trial.constraints.values())


def set_constraints(trial: optuna.Trial, values: Mapping[str, float]) -> None:
    for key, value in values.items():
        trial.set_constraint(key, value)


#: the start of the ``pruned`` reason of a trial stopped by the study's pruner
PRUNER_REASON = "stopped early by the pruner"


@dataclass
class _Member:
    """A trial of a population whose candidate is built and waits for (or has had) its training."""

    trial: optuna.Trial
    built: Built | None  # None: a repeat of another member's configuration
    digest: str
    steps: int = 0


@dataclass
class TrialRunner:
    """Runs trials of one study in this process."""

    study: optuna.Study
    plan: SearchPlan
    space: SearchSpace
    evaluator: CandidateEvaluator
    checkpoints: Path | None = None  # retrained candidates are saved here as trial-<number>.pt
    repeats: RepeatIndex = field(init=False)

    def __post_init__(self) -> None:
        self.repeats = RepeatIndex(self.study)

    def run(self, trial: optuna.Trial) -> None:
        """Run one trial (its ``worker`` was recorded when the trial was claimed: runner.next_trial)."""
        self.run_population([trial])

    def run_population(self, trials: Sequence[optuna.Trial]) -> None:
        """Run claimed trials together: each is suggested, reused or built and measured before training on its
        own; the candidates left to retrain are trained as one population (:meth:`CandidateEvaluator.
        train_together`), then each is measured and told. A failure fails its own trial only; an interrupt
        records every trial not yet told as interrupted (redone on resume)."""
        start = time.perf_counter()
        members: dict[str, _Member] = {}  # by configuration digest: a repeated one waits for the first
        repeats: list[tuple[optuna.Trial, _Member]] = []
        told: set[int] = set()
        try:
            for trial in trials:
                member = self._guard(trial, start, told, partial(self._prepare, trial, start, list(members.values())))
                if member is None:
                    continue
                if member.digest in members:
                    repeats.append((trial, members[member.digest]))
                else:
                    members[member.digest] = member
            if members and self.evaluator.retrain:
                self._train_guarded(list(members.values()), start, told)
            for member in members.values():
                if member.trial.number not in told:
                    self._guard(member.trial, start, told, partial(self._finish, member, start))
            for trial, first in repeats:
                self._guard(trial, start, told, partial(self._repeat, trial, first, start))
        except BaseException:  # interrupted: redone on resume
            self.abandon([trial for trial in trials if trial.number not in told])
            raise

    def _guard(
        self, trial: optuna.Trial, start: float, told: set[int], step: Callable[[], _Member | None] | Callable[[], None]
    ) -> _Member | None:
        """``step()`` for ``trial``; a bad candidate or a bug fails that trial alone (and marks it told)."""
        try:
            member = step()
        except Exception as exc:
            _raise_interrupt(exc)
            # a bad candidate: the study goes on; a bug in netcarve: recorded with its traceback, reported
            self._fail(trial, exc, start, internal=not isinstance(exc, BAD_CANDIDATE))
        else:
            if member is None:
                told.add(trial.number)
            return member
        told.add(trial.number)
        return None

    def _prepare(self, trial: optuna.Trial, start: float, pending: Sequence[_Member] = ()) -> _Member | None:
        """The trial's candidate built and measured before training, or None when the trial was already told
        (reused, or pruned before training)."""
        transforms = self.space.transforms(self.space.suggest(trial))
        digest = config_digest(transforms_key(transforms))
        write(trial, TrialRecord(config_key=digest))
        source = self.repeats.find(digest, trial.number)
        if source is not None:
            self._reuse(trial, source, start)
            return None
        write(trial, TrialRecord(transforms=transforms))
        if any(m.digest == digest for m in pending):
            return _Member(trial, None, digest)  # a repeat within this population: reuses the first's result
        built = self.evaluator.build(transforms)
        if isinstance(built, Outcome):
            self._record(trial, built, start)
            return None
        return _Member(trial, built, digest)

    def _train_guarded(self, members: list[_Member], start: float, told: set[int]) -> None:
        """:meth:`_train`; an error of the population as a whole fails each of its trials (the study goes on)."""
        try:
            self._train(members, start, told)
        except Exception as exc:
            _raise_interrupt(exc)
            internal = not isinstance(exc, BAD_CANDIDATE)
            for member in members:
                if member.trial.number not in told:
                    self._fail(member.trial, exc, start, internal=internal)
                    told.add(member.trial.number)

    def _train(self, members: list[_Member], start: float, told: set[int]) -> None:
        """Train the members together; a diverged member fails alone, a pruned one is recorded PRUNED."""
        keep_going = self._pruning([m.trial for m in members]) if self.prunes else None
        if len(members) > 1:
            log.info("population of %d candidates (trials %s): training", len(members),
                     ", ".join(str(m.trial.number) for m in members))  # fmt: skip
        built = [m.built for m in members if m.built is not None]
        labels = [f"trial {m.trial.number}" for m in members]
        results = self.evaluator.train_together(built, keep_going, labels)
        for member, result in zip(members, results, strict=True):
            member.steps = result.result.steps
            write(member.trial, TrialRecord(population=result.batch))  # the candidates trained with it
            if result.error is not None:
                self._fail(member.trial, result.error, start)
                told.add(member.trial.number)
            elif result.stopped:
                epochs = len(result.result.history)  # the epochs it trained, counted from 1
                accuracy = result.result.history[-1].val_accuracy if epochs else float("nan")
                write(member.trial, TrialRecord(pruned_epoch=epochs))
                reason = (f"{PRUNER_REASON} ({self.plan.pruner}): stopped after epoch {epochs} of "
                          f"{self.plan.train.max_epochs}, validation accuracy {accuracy:.4f}")  # fmt: skip
                metrics = member.built.metrics if member.built is not None else {}
                self._record(member.trial, Outcome(metrics, member.steps, reason), start)
                told.add(member.trial.number)

    def _pruning(self, trials: Sequence[optuna.Trial]) -> KeepGoing:
        """Report each member's validation accuracy per epoch; stop it when the study's pruner says so (never
        after its last epoch: a candidate that trained to the end is complete)."""
        last = self.plan.train.max_epochs - 1

        def keep_going(index: int, record: EpochRecord) -> bool:
            trial = trials[index]
            trial.report(record.val_accuracy, record.epoch)
            return record.epoch >= last or not trial.should_prune()

        return keep_going

    @property
    def prunes(self) -> bool:
        from netcarve.search.pruners import prunes

        return prunes(self.plan.pruner)

    def _finish(self, member: _Member, start: float) -> None:
        assert member.built is not None
        self._record(member.trial, self.evaluator.finish(member.built, member.steps), start)

    def _repeat(self, trial: optuna.Trial, first: _Member, start: float) -> None:
        """A configuration repeated within one population takes the result of its first trial."""
        from optuna.trial import TrialState

        number = first.trial.number
        source = self.repeats.trial(number)
        if source.state == TrialState.FAIL:
            raise SearchError(f"same configuration as trial {number}, which failed: "
                              f"{TrialRecord.of(source).error or 'no error recorded'}")  # fmt: skip
        self._reuse(trial, source, start)

    def _record(self, trial: optuna.Trial, outcome: Outcome, start: float) -> None:
        from optuna.trial import TrialState

        write(trial, TrialRecord(metrics=outcome.metrics, train_steps=outcome.train_steps))
        if outcome.front:
            files = self._save_front(trial.number, outcome)
            entries = tuple(d.entry(files.get(d.epoch)) for d in outcome.front)
            write(trial, TrialRecord(front=entries, design_epoch=outcome.design_epoch))
        set_constraints(trial, violations(self.plan, outcome.metrics))
        if outcome.pruned is not None:
            write(trial, TrialRecord(pruned=outcome.pruned, duration_s=time.perf_counter() - start))
            self.study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d pruned: %s", trial.number, outcome.pruned)
            return
        values = objective_values(self.plan, outcome.metrics)
        if not all(math.isfinite(v) for v in values):
            raise SearchError(f"objective value is not finite: {values}")
        write(trial, TrialRecord(scaled_metrics=scaled_metrics(self.plan, outcome.metrics)))
        self._save(trial.number, outcome)
        write(trial, TrialRecord(duration_s=time.perf_counter() - start))
        self.study.tell(trial, values)
        log.debug("trial %d: %s", trial.number, values)

    def _save(self, number: int, outcome: Outcome) -> None:
        if self.checkpoints is None or outcome.graph is None or outcome.train_steps == 0:
            return
        from netcarve.train.checkpoint import save_checkpoint

        meta = {"trial": number, "metrics": outcome.metrics}
        save_checkpoint(trial_checkpoint(self.checkpoints, number), outcome.graph, meta, overwrite=True)

    def _save_front(self, number: int, outcome: Outcome) -> dict[int, str]:
        """Each member of a learned candidate's front as ``trials/trial-<n>-front/epoch-<k>.pt`` (a checkpoint
        that exports); epoch → its path relative to the run dir. The graph is left at the design's state."""
        if self.checkpoints is None or outcome.graph is None:
            return {}
        from netcarve.train.checkpoint import save_checkpoint

        graph, files = outcome.graph, {}
        directory = self.checkpoints / f"trial-{number}-front"
        try:
            for design in outcome.front:
                if design.pruned is not None:
                    continue
                graph.module.load_state_dict(outcome.states[design.epoch])
                meta = {"trial": number, "epoch": design.epoch, "metrics": dict(design.metrics)}
                path = directory / f"epoch-{design.epoch}.pt"
                save_checkpoint(path, graph, meta, overwrite=True)
                files[design.epoch] = f"{self.checkpoints.name}/{directory.name}/{path.name}"
        finally:
            if outcome.design_epoch is not None:
                graph.module.load_state_dict(outcome.states[outcome.design_epoch])
        return files

    def _reuse(self, trial: optuna.Trial, source: FrozenTrial, start: float) -> None:
        from optuna.trial import TrialState

        record = TrialRecord.of(source)
        origin = record.reused_from if record.reused_from is not None else source.number
        copied = TrialRecord(
            transforms=record.transforms,
            metrics=record.metrics,
            scaled_metrics=record.scaled_metrics,
            train_steps=record.train_steps,
            pruned=record.pruned,
            pruned_epoch=record.pruned_epoch,
            front=record.front,
            design_epoch=record.design_epoch,
        )
        write(trial, copied)
        set_constraints(trial, source.constraints)
        write(trial, TrialRecord(reused_from=origin, duration_s=time.perf_counter() - start))
        if source.state == TrialState.PRUNED:
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, source.values)
        log.debug("trial %d: configuration already evaluated by trial %d, result reused", trial.number, origin)

    def _fail(self, trial: optuna.Trial, exc: Exception, start: float, internal: bool = False) -> None:
        message = f"{type(exc).__name__}: {exc}"
        text = "".join(traceback.format_exception(exc))
        record = TrialRecord(error=message, traceback=text, internal_error=internal)
        self._tell_failed(trial, replace(record, log=self._write_log(trial.number, text)), start)
        if internal:
            log.error("trial %d failed with an internal error (this is a bug in netcarve; the study goes on):\n%s",
                      trial.number, text.rstrip())  # fmt: skip
        else:
            log.warning("trial %d failed: %s", trial.number, message)

    def abandon(self, trials: Sequence[optuna.Trial]) -> None:
        """Claimed trials left unrun (interrupted): each recorded as interrupted, redone on resume. A second
        signal meanwhile waits until every trial is recorded; an error recording one does not stop the others
        (the first is raised at the end)."""
        from netcarve.search.runner import interrupts_deferred

        start, first = time.perf_counter(), None
        with interrupts_deferred():  # a signal meanwhile waits: no trial is left half recorded
            for trial in trials:
                try:
                    self._interrupted(trial, start)
                except BaseException as exc:  # each trial is recorded, even after another error
                    first = first or exc
        if first is not None:
            raise first

    def _interrupted(self, trial: optuna.Trial, start: float) -> None:
        # stale first: a second signal between the two writes must not leave an "error" that looks like a real
        # failure (a trial with an error and no stale mark counts as run to an end)
        self._tell_failed(trial, TrialRecord(stale=True, error="interrupted"), start)

    def _write_log(self, number: int, text: str) -> str | None:
        """The traceback as ``trials/trial-<n>.log`` in the run dir (its path relative to the run dir)."""
        if self.checkpoints is None:
            return None
        path = trial_log(self.checkpoints, number)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as exc:
            log.debug("could not write %s: %s", path, exc)
            return None
        return f"{path.parent.name}/{path.name}"

    def _tell_failed(self, trial: optuna.Trial, record: TrialRecord, start: float) -> None:
        from optuna.trial import TrialState

        try:
            write(trial, replace(record, duration_s=time.perf_counter() - start))
            self.study.tell(trial, state=TrialState.FAIL)
        except Exception as exc:  # the trial may already be finished (e.g. failed during tell)
            log.debug("could not record the failure of trial %d: %s", trial.number, exc)
