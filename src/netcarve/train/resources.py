"""The resource term of the training loss: beta · EBOPs of a model with ``learned`` quantizers (issue 22).

The model carries its beta schedule (``[passes.quantize]`` ``beta*`` keys, kept by the quantize pass on each
learned module's state). :class:`ResourceTerm` follows it through a run: each step adds ``beta · EBOPs``
(differentiable through the learned fracs) to the loss, and after each epoch it measures the EBOPs (eval mode:
the calibrated activation ranges, no update), which the epoch's record shows beside the accuracy, and moves
beta on (the ramp's next value, or steered toward the target EBOPs). A steered beta is not checkpointed: a new
run starts again from ``beta``.

Training sits below the transforms, so it does not import the learned quantizer: that module registers, when
imported (as it is before any model has a learned quantizer), a finder in :data:`FINDERS`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

log = logging.getLogger(__name__)


#: the submodule of a quantized module that holds its learned operands' state (an ``nn.ModuleDict`` keyed by
#: operand: :class:`LearnedState` each)
LEARNED = "learned"


class LearnedState(Protocol):
    """What training reads of one learned operand's state (``transforms.quantize.learned.LearnedOperand``):
    the fracs (the group shape) and, for an activation, the calibrated range."""

    frac: nn.Parameter
    activation: bool
    lo: torch.Tensor
    hi: torch.Tensor


def learned_state(module: nn.Module, operand: str) -> LearnedState | None:
    """The state of ``module``'s learned ``operand`` (None: the operand is not learned)."""
    found = module._modules.get(LEARNED)
    state = found._modules.get(operand) if isinstance(found, nn.ModuleDict) else None
    return state  # type: ignore[return-value]


class Schedule(Protocol):
    """A beta schedule (``netcarve.transforms.quantize.learned.BetaSchedule``)."""

    @property
    def target(self) -> float | None:
        """Steer toward this many EBOPs (None: a constant or a ramp)."""
        ...

    def at(self, epoch: int) -> float:
        """beta in ``epoch`` (a constant or a ramp; steering starts from it)."""
        ...

    def steer(self, beta: float, ebops: float) -> float:
        """The next epoch's beta after an epoch with ``ebops``, when steering."""
        ...


class EbopsFn(Protocol):
    """A model's EBOPs; ``fresh``: right after a training forward pass (the bits that pass computed)."""

    def __call__(self, fresh: bool = False) -> torch.Tensor: ...


#: (module) → (its EBOPs function, its beta schedule), or None when the module has no learned quantizer
Finder = Callable[[nn.Module], tuple[EbopsFn, Schedule] | None]
#: the finders registered by the quantizers with a resource cost (``transforms/quantize/learned.py``)
FINDERS: list[Finder] = []


class ResourceTerm:
    """beta · EBOPs of one model, beta following the model's schedule."""

    def __init__(self, module: nn.Module, ebops: EbopsFn, schedule: Schedule) -> None:
        self.module, self.ebops, self.schedule = module, ebops, schedule
        self.beta = schedule.at(0)

    @staticmethod
    def of(module: nn.Module) -> ResourceTerm | None:
        """The term of ``module``: None unless a finder knows its learned quantizers."""
        for finder in FINDERS:
            found = finder(module)
            if found is not None:
                return ResourceTerm(module, *found)
        return None

    def penalty(self) -> torch.Tensor:
        """beta · EBOPs, the term added to a step's loss (right after its forward pass)."""
        return self.beta * self.ebops(fresh=True)

    def end_epoch(self, epoch: int) -> tuple[float, float]:
        """(the EBOPs after ``epoch``, the beta it trained with); beta moves on to the next epoch."""
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                value = float(self.ebops())
        finally:
            self.module.train(was_training)
        return self.advance(epoch, value)

    def advance(self, epoch: int, value: float) -> tuple[float, float]:
        """``epoch`` ended with ``value`` EBOPs: (``value``, the beta it trained with); beta moves on."""
        used = self.beta
        steering = self.schedule.target is not None
        self.beta = self.schedule.steer(used, value) if steering else self.schedule.at(epoch + 1)
        log.debug("epoch %d: EBOPs %.6g, beta %.3g (next %.3g)", epoch, value, used, self.beta)
        return value, used
