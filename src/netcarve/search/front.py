"""A learned candidate's design: the member of its training's front that a search trial keeps (issue 22).

A candidate with ``learned`` quantizers trains once and passes through a front of designs
(:mod:`netcarve.train.front`: the epochs on the (validation accuracy, EBOPs) Pareto front). The search measures
every member as it measures any candidate (architecture and firmware metrics of its frozen formats, accuracy
and loss on the evaluation split) and keeps as the trial's design the best member meeting the constraints
(:func:`choose`):

1. the members that meet every ``[search.constraints]`` bound; when none does, those with the least total
   violation (the trial is then infeasible, as any other candidate that breaks a bound);
2. of those, the best by the study's objective: the largest Σ sign·scale·metric in a sum study; in a Pareto
   study the objectives compared in config order, each in its direction (a study of accuracy and fpga_luts
   with an ``fpga_luts`` bound takes the most accurate member within the bound);
3. ties: fewer EBOPs, then the later epoch.

A member whose firmware cannot be estimated (``pruned``) is never the design. The trial records every member
(``front``: epoch, metrics, checkpoint) and the chosen epoch (``design_epoch``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netcarve import outcomes
from netcarve.search.plan import SearchPlan, objective_values


@dataclass(frozen=True)
class FrontDesign:
    """One member of a learned candidate's front, measured: the epoch, its EBOPs while training, its metrics
    (evaluation split, frozen formats) and why it has no design, if it has none (not exportable)."""

    epoch: int
    ebops: float
    metrics: Mapping[str, float]
    pruned: str | None = None

    def entry(self, checkpoint: str | None = None) -> dict[str, Any]:
        """The member as the trial's ``front`` attribute lists it (JSON)."""
        out: dict[str, Any] = {"epoch": self.epoch, "metrics": {k: float(v) for k, v in self.metrics.items()}}
        if self.pruned is not None:
            out["pruned"] = self.pruned
        if checkpoint is not None:
            out["checkpoint"] = checkpoint
        return out


def _excess(plan: SearchPlan, metrics: Mapping[str, float]) -> float:
    """The total violation of the constraints (0 when all are met)."""
    return math.fsum(max(v, 0.0) for v in outcomes.violations(plan.constraints, metrics).values())


def _rank(plan: SearchPlan, design: FrontDesign) -> tuple[float, ...]:
    """Larger is better: the objective (sum) or each objective signed by its direction (Pareto), then fewer
    EBOPs, then the later epoch."""
    values = objective_values(plan, design.metrics)
    signed = values if plan.sum_scaled else [m.sign * v for m, v in zip(plan.metrics, values, strict=True)]
    return (*signed, -design.ebops, design.epoch)


def choose(plan: SearchPlan, front: Sequence[FrontDesign]) -> int | None:
    """The index of the trial's design in ``front`` (module docstring); None when every member is pruned."""
    usable = [i for i, d in enumerate(front) if d.pruned is None]
    if not usable:
        return None
    excess = {i: _excess(plan, front[i].metrics) for i in usable}
    least = min(excess.values())
    pool = [i for i in usable if excess[i] == least]
    return max(pool, key=lambda i: _rank(plan, front[i]))
