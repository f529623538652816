"""Optimizers (adam, adamw, sgd) and learning-rate schedules (constant, linear, cosine; warm-up)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from netcarve.registry import Registry

OptimizerFactory = Callable[[Iterable[nn.Parameter], float, float], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
SCHEDULES: Registry[Callable[[float], float]] = Registry("lr scheduler")


@OPTIMIZERS.register("adam")
def _adam(params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam (fused kernel: one call updates every parameter)."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)


@OPTIMIZERS.register("adamw")
def _adamw(params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


@OPTIMIZERS.register("sgd")
def _sgd(params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD with momentum 0.9."""
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, foreach=True)


# a schedule maps training progress p ∈ [0, 1] (after warm-up) to a multiplier of the learning rate
SCHEDULES.add("constant", lambda p: 1.0, description="constant learning rate")
SCHEDULES.add("linear", lambda p: max(0.0, 1.0 - p), description="linear decay to 0")
SCHEDULES.add("cosine", lambda p: 0.5 * (1.0 + math.cos(math.pi * min(1.0, p))), description="cosine decay to 0")


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): linear warm-up, then the schedule."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    return SCHEDULES.get(schedule)((step - warmup_steps) / span)


def make_optimizer(
    module: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    total_steps: int,
    warmup_steps: int,
    schedule: str,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR | None]:
    """The optimizer and its schedule; no scheduler (no per-step cost) for a constant rate without warm-up."""
    optimizer = OPTIMIZERS.get(name)([p for p in module.parameters() if p.requires_grad], lr, weight_decay)
    if SCHEDULES.canonical(schedule) == "constant" and warmup_steps == 0:
        return optimizer, None
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, total_steps, warmup_steps, schedule)
    )
    return optimizer, scheduler
