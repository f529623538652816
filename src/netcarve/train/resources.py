"""The resource term of the training loss: beta · EBOPs of a model with ``learned`` quantizers (issue 22).

The model carries its beta schedule (``[passes.quantize]`` ``beta*`` keys, kept by the quantize pass on each
learned module's state: :class:`~netcarve.transforms.quantize.learned.BetaSchedule`); :class:`ResourceTerm`
follows it through a run: each step adds ``beta · EBOPs`` (differentiable through the learned fracs) to the
loss, and after each epoch it measures the EBOPs (eval mode: the calibrated activation ranges, no update),
which the epoch's record shows beside the accuracy, and moves beta on (the ramp's next value, or steered
toward the target EBOPs). A steered beta is not checkpointed: a new run starts again from ``beta``.
"""

from __future__ import annotations

import logging

import torch
import torch.fx as fx
from torch import nn

log = logging.getLogger(__name__)


class ResourceTerm:
    """beta · EBOPs of one model, beta following the model's schedule."""

    def __init__(self, module: fx.GraphModule) -> None:
        from netcarve.transforms.quantize.learned import beta_schedule

        schedule = beta_schedule(module)
        assert schedule is not None
        self.module, self.schedule = module, schedule
        self.beta = schedule.at(0)

    @staticmethod
    def of(module: nn.Module) -> ResourceTerm | None:
        """The term of ``module``: None unless it is a netcarve graph module with learned quantizers."""
        from netcarve.transforms.quantize.learned import has_learned

        if not isinstance(module, fx.GraphModule) or not has_learned(module):
            return None
        return ResourceTerm(module)

    def ebops(self) -> torch.Tensor:
        """The model's EBOPs now (differentiable through the learned fracs)."""
        from netcarve.transforms.quantize.learned import module_ebops

        return module_ebops(self.module)

    def penalty(self) -> torch.Tensor:
        """beta · EBOPs, the term added to a step's loss."""
        return self.beta * self.ebops()

    def end_epoch(self, epoch: int) -> tuple[float, float]:
        """(the EBOPs after ``epoch``, the beta it trained with); beta moves on to the next epoch."""
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                value = float(self.ebops())
        finally:
            self.module.train(was_training)
        used = self.beta
        self.beta = (
            self.schedule.steer(used, value) if self.schedule.target is not None else self.schedule.at(epoch + 1)
        )
        log.debug("epoch %d: EBOPs %.6g, beta %.3g (next %.3g)", epoch, value, used, self.beta)
        return value, used
