"""Optimizers (adam, adamw, sgd) and learning-rate schedules (constant, linear, cosine; warm-up)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import torch
from torch import nn

from netcarve.config import training
from netcarve.errors import TrainingError
from netcarve.registry import Registry


class Stepper(Protocol):
    """What the training loop needs of an optimizer: a settable learning rate, step and zero_grad.

    Population training stacks the parameters of many members into one tensor each; it uses an optimizer
    only if the optimizer has ``stacks = True``: its update is elementwise (each member's entries are
    updated as that member's own parameter would be) and :func:`select_state` can pick members out of its
    state. (Any other registered optimizer makes population members train alone, logged.)"""

    lr: float

    def step(self) -> None: ...

    def zero_grad(self) -> None: ...


class FusedAdam:
    """Adam / AdamW as one call of torch's fused kernel per step.

    Same arithmetic as ``torch.optim.Adam(fused=True)`` / ``AdamW(fused=True)`` (bit-identical, tested), but
    without torch.optim's per-step bookkeeping (hooks, profiler ranges, regrouping tensors): on a JSC MLP
    that bookkeeping costs about 140 µs of a 1.2 ms step.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float,
        weight_decay: float,
        decoupled: bool,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.stacks = True  # Adam/AdamW are elementwise
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self._kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
        self._exp_avg = [torch.zeros_like(p) for p in self.params]
        self._exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        #: each parameter's step count; while every parameter has stepped every time, one tensor ``_shared``
        #: that every entry is (one increment a step, not one per parameter: 2.5 vs 15-23 µs)
        devices = {p.device for p in self.params}
        self._shared: torch.Tensor | None = None
        if len(devices) <= 1:
            self._shared = torch.zeros((), dtype=torch.float32, device=devices.pop() if devices else None)
            self._steps = [self._shared] * len(self.params)
        else:  # parameters on several devices: a count on each one's own
            self._steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def _split_steps(self) -> None:
        """From now on each parameter counts its own steps (one of them is skipped)."""
        if self._shared is not None:
            self._steps = [self._shared.clone() for _ in self.params]
            self._shared = None

    def copy_steps(self, old: FusedAdam) -> None:
        """Take ``old``'s step counts (over the same parameters, in the same order)."""
        if old._shared is not None and self._shared is not None:
            self._shared.copy_(old._shared)
        else:
            self._shared = None
            self._steps = [s.clone() for s in old._steps]

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        keep: Sequence[int] = range(len(grads))
        if any(g is None for g in grads):  # parameters without a gradient are skipped, as torch.optim does
            keep = [i for i, g in enumerate(grads) if g is not None]
            self._split_steps()
        if not keep:  # nothing to update (no parameters, or none has a gradient), as torch.optim
            return
        params: list[torch.Tensor] = [self.params[i] for i in keep]
        steps = [self._steps[i] for i in keep]
        if self._shared is not None:
            self._shared.add_(1)
        else:
            torch._foreach_add_(steps, 1)
        self._kernel(
            params,
            [grads[i] for i in keep],  # type: ignore[misc]
            [self._exp_avg[i] for i in keep],
            [self._exp_avg_sq[i] for i in keep],
            [],
            steps,
            lr=self.lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            weight_decay=self.weight_decay,
            eps=self.eps,
            amsgrad=False,
            maximize=False,
        )

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


class TorchStepper:
    """A torch.optim optimizer behind the :class:`Stepper` interface; ``stacks``: its update is elementwise
    and its per-parameter state is shaped like the parameter or scalar (see :class:`Stepper`)."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, stacks: bool = False) -> None:
        self.optimizer = optimizer
        self.stacks = stacks

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = value

    def step(self) -> None:
        self.optimizer.step()

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)


OptimizerFactory = Callable[[Iterable[nn.Parameter], float, float], Stepper]
#: the registries declared (names, descriptions) in :mod:`netcarve.config.training`, bound below
OPTIMIZERS = cast("Registry[OptimizerFactory]", training.OPTIMIZERS)
SCHEDULES = cast("Registry[Callable[[float], float]]", training.SCHEDULES)


def _implements(name: str) -> Callable[[OptimizerFactory], OptimizerFactory]:
    """Bind the optimizer ``name`` declared in :data:`netcarve.config.training.OPTIMIZERS` to the function."""

    def bind(fn: OptimizerFactory) -> OptimizerFactory:
        return OPTIMIZERS.replace(name, fn)

    return bind


@_implements("adam")
def _adam(params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> Stepper:
    """Adam (torch's fused kernel, called directly)."""
    return FusedAdam(params, lr, weight_decay, decoupled=False)


@_implements("adamw")
def _adamw(params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> Stepper:
    """AdamW (decoupled weight decay; torch's fused kernel, called directly)."""
    return FusedAdam(params, lr, weight_decay, decoupled=True)


@_implements("sgd")
def _sgd(params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> Stepper:
    """SGD with momentum 0.9."""
    return TorchStepper(
        torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, foreach=True), stacks=True
    )


# a schedule maps training progress p ∈ [0, 1] (after warm-up) to a multiplier of the learning rate
SCHEDULES.replace("constant", lambda p: 1.0)
SCHEDULES.replace("linear", lambda p: max(0.0, 1.0 - p))
SCHEDULES.replace("cosine", lambda p: 0.5 * (1.0 + math.cos(math.pi * min(1.0, p))))


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): linear warm-up, then the schedule."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    return SCHEDULES.get(schedule)((step - warmup_steps) / span)


@dataclass(frozen=True)
class Schedule:
    """The learning rate of every step: ``base × lr_multiplier(step, …)``."""

    base_lr: float
    total_steps: int
    warmup_steps: int
    name: str

    def lr(self, step: int) -> float:
        return self.base_lr * lr_multiplier(step, self.total_steps, self.warmup_steps, self.name)


def make_optimizer(
    module: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    total_steps: int,
    warmup_steps: int,
    schedule: str,
) -> tuple[Stepper, Schedule | None]:
    """The optimizer and its schedule; no schedule (no per-step cost) for a constant rate without warm-up."""
    stepper = OPTIMIZERS.get(name)(module.parameters(), lr, weight_decay)
    if SCHEDULES.canonical(schedule) == "constant" and warmup_steps == 0:
        return stepper, None
    return stepper, Schedule(lr, total_steps, warmup_steps, SCHEDULES.canonical(schedule))


def optimizer_stacks(name: str) -> bool:
    """Whether the registered optimizer ``name`` can train stacked members (``Stepper.stacks``; asked of
    one built on a one-element parameter; False when that cannot be built)."""
    try:
        probe = OPTIMIZERS.get(name)([nn.Parameter(torch.zeros(1))], 1e-3, 0.0)
    except Exception:  # a factory that cannot build this probe cannot be vouched for; fit will say why
        return False
    return bool(getattr(probe, "stacks", False))


def select_state(old: Stepper, new: Stepper, old_params: list[nn.Parameter], idx: torch.Tensor) -> None:
    """Move the optimizer state of the stacked members ``idx`` (dimension 0 of every parameter) from ``old``
    into ``new``, built over the re-stacked parameters in the same order; the learning rate too."""
    new.lr = old.lr
    if isinstance(old, FusedAdam) and isinstance(new, FusedAdam):
        new._exp_avg = [s.index_select(0, idx) for s in old._exp_avg]
        new._exp_avg_sq = [s.index_select(0, idx) for s in old._exp_avg_sq]
        new.copy_steps(old)
    elif isinstance(old, TorchStepper) and isinstance(new, TorchStepper):
        new_params = [p for group in new.optimizer.param_groups for p in group["params"]]
        for p_old, p_new in zip(old_params, new_params, strict=True):
            state = old.optimizer.state.get(p_old)
            if not state:
                continue
            new.optimizer.state[p_new] = {
                k: (v.index_select(0, idx) if v.shape == p_old.shape else v.clone())
                if isinstance(v, torch.Tensor)
                else v
                for k, v in state.items()
            }
    else:
        raise TrainingError(f"cannot remove members from a population trained by {type(old).__name__}")
