"""Build and measure one candidate: base graph → transforms → (retrain) → metrics, fresh every time.

Nothing is shared between candidates but the read-only base graph and data: every candidate starts from a
copy of the base graph, training is seeded, and metrics are computed from the candidate alone, so the same
configuration always gives the same metrics (latency, which is measured, aside).

A configuration whose candidate cannot be built (a transform pass rejects it, e.g. a minifloat width with no
room for its exponent bits) is *invalid*: :meth:`CandidateEvaluator.evaluate` returns it pruned with the
reason, before any training (see :mod:`netcarve.search.validity`).

When the plan uses a firmware metric (fpga_luts, fpga_latency), each candidate's fixed-point program is
traced by alkaid with the architecture metrics (:mod:`netcarve.analysis.fpga`, cached by the program's
digest); a candidate that cannot be exported (a float layer, a branch) is pruned with the reason. The
estimates depend on the weights: a retrained candidate is pruned on its weights before retraining and
records the estimates of its retrained weights (the firmware its checkpoint would export).

A candidate with ``learned`` quantizers (issue 22) learns its formats while it trains, so it is neither costed
nor pruned on its starting formats: it trains (in a population with the learned candidates of its layer
sequence, or alone) validating every epoch and keeping its front of epochs in memory, then every member of its
front is measured and the trial's design is the best one meeting the constraints (:mod:`netcarve.search.front`).
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch

from netcarve.data.base import Split, TensorSplits
from netcarve.errors import NetcarveError, TrainingError
from netcarve.ir.graph import Graph
from netcarve.metrics import architecture_metrics, firmware_metrics
from netcarve.search.front import FrontDesign, choose
from netcarve.search.plan import SearchPlan
from netcarve.search.spaces import Transforms

if TYPE_CHECKING:
    from netcarve.train.front import EpochFront
    from netcarve.train.loop import EpochRecord, FitResult
    from netcarve.train.population import KeepGoing, MemberOutcome

log = logging.getLogger(__name__)

#: latency measurement in a search: single forward passes at batch size 1
LATENCY_RUNS, LATENCY_WARMUP = 30, 5
#: the start of the ``pruned`` reason of a trial whose configuration is invalid
INVALID = "invalid configuration"
#: the start of the ``pruned`` reason of a trial whose candidate has no firmware (fpga metrics asked for)
NOT_EXPORTABLE = "not exportable to firmware"


def is_learned(graph: Graph) -> bool:
    """Whether the candidate has ``learned`` quantizers (it keeps a front of epochs)."""
    from netcarve.transforms.quantize.learned import has_learned

    return has_learned(graph.module)


@dataclass(frozen=True)
class Built:
    """A candidate built and measured before training: its graph and architecture (firmware) metrics."""

    graph: Graph
    metrics: dict[str, float]


@dataclass(frozen=True)
class Outcome:
    """What one candidate measured; ``pruned`` holds the violated architecture constraint or why the
    configuration is invalid, if either."""

    metrics: dict[str, float]
    train_steps: int = 0
    pruned: str | None = None
    graph: Graph | None = None
    #: a learned candidate: every member of its front, measured, the chosen epoch, and each member's state
    front: tuple[FrontDesign, ...] = ()
    design_epoch: int | None = None
    states: Mapping[int, Mapping[str, torch.Tensor]] = field(default_factory=dict)


def build_candidate(base: Graph, transforms: Transforms) -> Graph:
    """Apply ``transforms`` to ``base``: transform passes return a new graph and never mutate their input;
    a result that still shares the base's module (no transform) is copied, so training never touches it."""
    from netcarve.ir.replay import apply_transforms

    graph = apply_transforms(base, transforms)
    return graph.copy() if graph.module is base.module else graph


def try_build(base: Graph, transforms: Transforms) -> Graph | NetcarveError:
    """The candidate, or the error that makes its configuration invalid (no training: passes only).

    Only netcarve's own errors mean "invalid"; any other exception is a bug and propagates."""
    try:
        return build_candidate(base, transforms)
    except NetcarveError as exc:
        return exc


def invalid_reason(error: NetcarveError) -> str:
    """The ``pruned`` text of a trial whose configuration is invalid."""
    return f"{INVALID}: {error}"


class CandidateEvaluator:
    """Evaluates candidates of one search in this process (base graph and splits are read-only)."""

    def __init__(self, base: Graph, splits: TensorSplits, plan: SearchPlan, retrain: bool) -> None:
        self.base = base
        self.plan = plan
        self.retrain = retrain
        #: ``(done, total)`` training steps of the candidate or population being retrained (a progress bar)
        self.on_training: Callable[[int, int], None] | None = None
        self.eval_split: Split = splits.split(plan.eval_split).head(plan.eval_samples)
        self.train_splits = replace(splits, train=splits.split(plan.train_split))
        #: the fronts of learned candidates trained and not yet finished, by module
        self._fronts: weakref.WeakKeyDictionary[torch.nn.Module, EpochFront] = weakref.WeakKeyDictionary()

    def evaluate(self, transforms: Transforms) -> Outcome:
        """Build, (retrain alone,) measure: one candidate from start to end."""
        built = self.build(transforms)
        if isinstance(built, Outcome):
            return built
        steps = self.train(built.graph).steps if self.retrain else 0
        return self.finish(built, steps)

    def build(self, transforms: Transforms) -> Outcome | Built:
        """The candidate with its architecture (and firmware) metrics, ready to train; or its Outcome when it
        is pruned before any training (invalid, not exportable, an architecture constraint violated)."""
        graph = try_build(self.base, transforms)
        if isinstance(graph, NetcarveError):
            return Outcome({}, pruned=invalid_reason(graph))
        metrics = self.architecture(graph)
        if self.retrain and is_learned(graph):  # costed and constrained on the formats it learns, not these
            return Built(graph, metrics)
        if self.plan.needs_fpga:
            fpga = self.fpga(graph)
            if isinstance(fpga, str):
                return Outcome(metrics, pruned=fpga)
            metrics.update(fpga)
        for constraint in self.plan.constraints:
            if constraint.architecture and constraint.violation(metrics[constraint.metric]) > 0:
                return Outcome(metrics, pruned=constraint.reason(metrics[constraint.metric]))
        return Built(graph, metrics)

    def finish(self, built: Built, steps: int) -> Outcome:
        """The metrics of a built candidate after its training (``steps`` optimizer steps; 0 in eval mode)."""
        graph, metrics = built.graph, dict(built.metrics)
        front = self._fronts.pop(graph.module, None)
        if front is not None:
            return self.finish_front(built, steps, front)
        if self.retrain and self.plan.needs_fpga:
            # pruned above on the weights before retraining; recorded for the retrained ones (the firmware)
            fpga = self.fpga(graph)
            if isinstance(fpga, str):
                return Outcome(metrics, steps, pruned=fpga)
            metrics.update(fpga)
        metrics.update(self.software(graph))
        if self.plan.needs_latency:
            metrics["latency"] = self.latency(graph)
        return Outcome(metrics, steps, None, graph)

    def finish_front(self, built: Built, steps: int, front: EpochFront) -> Outcome:
        """A learned candidate's outcome: every member of its front measured, the best one meeting the
        constraints as the design (:func:`netcarve.search.front.choose`), its graph at that epoch."""
        graph = built.graph
        designs: list[FrontDesign] = []
        for member in front.sorted():
            graph.module.load_state_dict(front.states[member.epoch])
            graph.module.eval()
            metrics = self.architecture(graph)
            pruned = None
            if self.plan.needs_fpga:
                fpga = self.fpga(graph)
                if isinstance(fpga, str):
                    pruned = fpga
                else:
                    metrics.update(fpga)
            if pruned is None:
                metrics.update(self.software(graph))
            designs.append(FrontDesign(member.epoch, member.ebops, metrics, pruned))
        index = choose(self.plan, designs)
        if index is None:
            reason = designs[0].pruned if designs else "its training left no epoch with a finite validation accuracy"
            return Outcome(dict(built.metrics), steps, pruned=f"no design on the learned front: {reason}")
        design = designs[index]
        graph.module.load_state_dict(front.states[design.epoch])
        graph.module.eval()
        metrics = dict(design.metrics)
        if self.plan.needs_latency:
            metrics["latency"] = self.latency(graph)
        log.debug("learned candidate: epoch %d of a front of %d is the design", design.epoch, len(designs))
        return Outcome(metrics, steps, None, graph, tuple(designs), design.epoch, dict(front.states))

    def train_together(
        self, built: Sequence[Built], keep_going: KeepGoing | None = None, labels: Sequence[str] | None = None
    ) -> list[MemberOutcome]:
        """Train built candidates together (one batched pass per shared template; see
        :mod:`netcarve.train.population`), each exactly as :meth:`train` trains it alone, a learned one keeping
        its front (validation every epoch). One candidate is trained by :meth:`train` itself (its errors
        propagate, as they do one by one)."""
        from netcarve.train.front import EpochFront
        from netcarve.train.population import MemberOutcome, fit_population

        if len(built) == 1:
            one = (lambda record: keep_going(0, record)) if keep_going is not None else None
            result = self.train(built[0].graph) if one is None else self.train(built[0].graph, one)
            return [MemberOutcome(result, stopped=result.stopped)]
        fronts = {i: EpochFront(None) for i, b in enumerate(built) if is_learned(b.graph)}

        def on_epoch(index: int, record: EpochRecord, is_best: bool) -> None:
            front = fronts.get(index)
            if front is not None:  # the member's module holds this epoch's weights
                front.offer(record, built[index].graph, {})

        modules = [b.graph.module for b in built]  # each ends in eval mode
        outcomes = fit_population(modules, self.train_splits, self.plan.train, keep_going=keep_going, labels=labels,
                                  on_step=self.on_training, validate=bool(fronts),
                                  on_epoch=on_epoch if fronts else None)  # fmt: skip
        for i, front in fronts.items():
            self._fronts[built[i].graph.module] = front
        return outcomes

    def architecture(self, graph: Graph) -> dict[str, float]:
        from netcarve.analysis import analyze

        report = analyze(graph, (1, *graph.input_shape))
        return architecture_metrics(report.total, self.plan.compare_to)

    def fpga(self, graph: Graph) -> dict[str, float] | str:
        """The firmware metrics, or the ``pruned`` reason when the candidate cannot be exported."""
        from netcarve.analysis.fpga import fpga_costs
        from netcarve.errors import PassError

        try:
            return firmware_metrics(fpga_costs(graph, per_layer=False))
        except PassError as exc:
            return f"{NOT_EXPORTABLE} (needed by the fpga metrics): {exc}"

    def train(self, graph: Graph, keep_going: Callable[[EpochRecord], bool] | None = None) -> FitResult:
        """Retrain the candidate alone (seeded); ``keep_going`` sees each epoch (a pruner's reports). A learned
        candidate validates every epoch and keeps its front of epochs in memory for :meth:`finish`."""
        from netcarve.train.front import EpochFront
        from netcarve.train.loop import fit, steps_only

        front = EpochFront(None) if is_learned(graph) else None

        def on_epoch(record: EpochRecord, is_best: bool) -> None:
            if front is not None:
                front.offer(record, graph, {})

        torch.manual_seed(self.plan.train.seed)
        result = fit(graph.module, self.train_splits, self.plan.train,
                     validate=keep_going is not None or front is not None, keep_going=keep_going,
                     on_epoch=on_epoch if front is not None else None,
                     on_step=steps_only(self.on_training))  # fmt: skip
        graph.module.eval()
        if front is not None:
            self._fronts[graph.module] = front
        return result

    def software(self, graph: Graph) -> dict[str, float]:
        from netcarve.train.loop import evaluate

        result = evaluate(graph.module, self.eval_split)
        if not math.isfinite(result.loss):
            raise TrainingError(f"the candidate's evaluation loss is {result.loss}")
        return {"accuracy": result.accuracy, "loss": result.loss}

    def latency(self, graph: Graph) -> float:
        from netcarve.analysis import measure_latency

        device = self.eval_split.x.device
        example = torch.zeros((1, *graph.input_shape), device=device)
        measured = measure_latency(graph.module, example, runs=LATENCY_RUNS, warmup=LATENCY_WARMUP)
        return measured.median_s * 1e3
