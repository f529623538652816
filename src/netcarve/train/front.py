"""One training, a front of designs (issue 22): the epochs of a run with learned quantizers that are on the
(validation accuracy, EBOPs) Pareto front, each with its checkpoint.

Learned precision trades accuracy for bits while it trains, so the last epoch and the most accurate one are
only two of the designs a run passes through; the others on the front are as good a choice for a tighter
resource budget. :class:`EpochFront` is offered each epoch's record: an epoch no member dominates joins (its
checkpoint written to ``front/epoch-N.pt``, learned state included: it reloads and exports bit for bit), and
the members it dominates leave, their files removed, so the directory holds exactly the front. Dominance is
:mod:`netcarve.outcomes`'s (equal points do not dominate each other: both stay). Without a run dir (a search
trial: :mod:`netcarve.search.candidate`), the members' states are kept in memory instead (``states``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from netcarve.ir.graph import Graph
from netcarve.outcomes import MAXIMIZE, MINIMIZE, non_dominated
from netcarve.train.checkpoint import save_checkpoint
from netcarve.train.records import EpochRecord

log = logging.getLogger(__name__)

#: the front's objectives, in the order of a member's point
OBJECTIVES = (("val_accuracy", MAXIMIZE), ("ebops", MINIMIZE))
DIRECTIONS = tuple(direction for _, direction in OBJECTIVES)
#: the run dir's folder of front checkpoints, and the file listing them
FRONT_DIR = "front"
FRONT_FILE = "front.json"


@dataclass(frozen=True)
class FrontMember:
    """An epoch on the front: its point, its checkpoint and (after training) alkaid's firmware estimates."""

    epoch: int
    val_accuracy: float
    ebops: float
    #: None for a front kept in memory (its state in :attr:`EpochFront.states`)
    checkpoint: Path | None
    fpga_luts: float | None = None
    #: the critical path's delay in ns
    fpga_latency: float | None = None

    @property
    def point(self) -> tuple[float, float]:
        return (self.val_accuracy, self.ebops)

    @property
    def file(self) -> Path:
        """The member's checkpoint (a front kept on disk)."""
        if self.checkpoint is None:
            raise ValueError(f"epoch {self.epoch} of a front kept in memory has no checkpoint file")
        return self.checkpoint

    def with_fpga(self, luts: float, latency: float) -> FrontMember:
        return replace(self, fpga_luts=luts, fpga_latency=latency)

    def as_dict(self, run_dir: Path) -> dict[str, Any]:
        """The member as ``front.json`` lists it: the checkpoint relative to the run dir (which may move)."""
        data: dict[str, Any] = {
            "epoch": self.epoch,
            "val_accuracy": self.val_accuracy,
            "ebops": self.ebops,
            "checkpoint": self.file.relative_to(run_dir).as_posix(),
        }
        if self.fpga_luts is not None:
            data.update(fpga_luts=self.fpga_luts, fpga_latency=self.fpga_latency)
        return data


class EpochFront:
    """The Pareto front over a run's epochs, its checkpoints under ``run_dir/front`` (created on the first), or,
    with ``run_dir`` None, its members' state dicts in :attr:`states` (by epoch)."""

    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir = run_dir
        self.members: list[FrontMember] = []
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def offer(self, record: EpochRecord, graph: Graph, meta: dict[str, Any]) -> bool:
        """Consider the epoch of ``record`` (``graph`` as it is after that epoch); True when it joined the
        front. A record without EBOPs (no learned quantizers) or without a finite point is never a member."""
        if record.ebops is None or not (math.isfinite(record.val_accuracy) and math.isfinite(record.ebops)):
            return False
        path = None if self.run_dir is None else self.run_dir / FRONT_DIR / f"epoch-{record.epoch}.pt"
        candidate = FrontMember(record.epoch, record.val_accuracy, record.ebops, path)
        everyone = [*self.members, candidate]
        kept = non_dominated([m.point for m in everyone], DIRECTIONS)
        if len(everyone) - 1 not in kept:
            return False
        if path is None:
            self.states[record.epoch] = {k: v.detach().clone() for k, v in graph.module.state_dict().items()}
        else:
            save_checkpoint(path, graph, meta, overwrite=True)
        for i, member in enumerate(self.members):
            if i not in kept:  # dominated by the new epoch: only files this front wrote are removed
                if member.checkpoint is None:
                    del self.states[member.epoch]
                else:
                    member.checkpoint.unlink(missing_ok=True)
                log.debug("epoch %d left the front (dominated by epoch %d)", member.epoch, record.epoch)
        self.members = [everyone[i] for i in kept]
        return True

    def sorted(self) -> list[FrontMember]:
        """The members by EBOPs, fewest first (then by epoch)."""
        return sorted(self.members, key=lambda m: (m.ebops, m.epoch))
