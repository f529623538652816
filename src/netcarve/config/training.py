"""How a model is trained: the one declaration of every training key (README: Config format).

:class:`TrainingSettings` is used in three places without a second declaration of its fields:

- the top level of a config: :class:`~netcarve.config.run.RunConfig` extends it, and its TOML key for
  ``optimizer`` is MASE's ``training_optimizer`` (an alias; the other keys are the field names);
- ``[search.strategy.sw_runner.basic_train]``: :class:`~netcarve.config.search.BasicTrain` extends it (same
  keys, ``optimizer`` included; a candidate trains one epoch unless ``max_epochs`` is set);
- the training loop: :data:`netcarve.train.loop.TrainConfig` *is* this model, and :func:`training_settings`
  takes the settings out of either table.

Optimizer and scheduler names are checked against :data:`OPTIMIZERS` and :data:`SCHEDULES`, declared here
(name and description, no torch) and bound to their implementations by :mod:`netcarve.train.optim`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator

from netcarve.config.base import Strict
from netcarve.errors import UnknownNameError
from netcarve.registry import Registry

#: seeds are 32-bit: Optuna's samplers (numpy) take at most 2^32 − 1
MAX_SEED = 2**32 - 1

#: epochs over the training split (shared by the tables that give it another default)
Epochs = Annotated[int, Field(ge=1)]


#: The optimizers and learning-rate schedules a config may name: one registry each, declared here with their
#: names and descriptions so that a config is validated without torch; :mod:`netcarve.train.optim` binds each
#: entry to its implementation (as ``config/pass_registry.py`` declares the passes their modules bind). An
#: optimizer of one's own is added to the same registry with its implementation: ``OPTIMIZERS.add(name, fn)``.
OPTIMIZERS: Registry[Any] = Registry("optimizer")
OPTIMIZERS.add("adam", None, description="Adam (torch's fused kernel, called directly)")
OPTIMIZERS.add("adamw", None, description="AdamW (decoupled weight decay; torch's fused kernel, called directly)")
OPTIMIZERS.add("sgd", None, description="SGD with momentum 0.9")
SCHEDULES: Registry[Any] = Registry("lr scheduler")
SCHEDULES.add("constant", None, description="constant learning rate")
SCHEDULES.add("linear", None, description="linear decay to 0")
SCHEDULES.add("cosine", None, description="cosine decay to 0")


def _registered(kind: str, value: str) -> str:
    """``value`` as the canonical name in the optimizer or scheduler registry; ValueError with "did you mean"."""
    registry = OPTIMIZERS if kind == "optimizer" else SCHEDULES
    try:
        return registry.canonical(value)
    except UnknownNameError as exc:
        raise ValueError(str(exc)) from exc


class TrainingSettings(Strict):
    """The settings of one training run (``netcarve train``, a search's base model or retrained candidate)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    max_epochs: Epochs = 10
    """Epochs over the training split."""
    max_steps: int | None = None
    """Stop after this many optimizer steps, even within an epoch; ≤ 0 or "NA" means no limit."""
    batch_size: int = Field(default=256, ge=1)
    """Rows per optimizer step."""
    learning_rate: float = Field(default=1e-3, gt=0)
    """Base learning rate (before warm-up and schedule)."""
    weight_decay: float = Field(default=0.0, ge=0)
    """L2 penalty (decoupled for adamw)."""
    optimizer: str = "adam"
    """A name in :data:`OPTIMIZERS`: adam, adamw, sgd (momentum 0.9)."""
    lr_scheduler: str = "constant"
    """A name in :data:`SCHEDULES`: constant, linear, cosine (both decay to 0 over the run)."""
    num_warmup_steps: int = Field(default=0, ge=0)
    """Steps of linear warm-up from lr/num_warmup_steps to the learning rate, then the schedule."""
    seed: int = Field(default=42, ge=0, le=MAX_SEED)
    """Seed of the initialisation and of the batch order."""
    num_samples: int | None = Field(default=None, ge=1)
    """Train on the first N rows of the training split only; None = all of them."""
    log_every_n_steps: int = Field(default=50, ge=1)
    """Report the running loss and accuracy (the progress bar) every N optimizer steps."""

    @field_validator("max_steps")
    @classmethod
    def _no_limit(cls, value: int | None) -> int | None:
        return None if value is None or value <= 0 else value

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, value: str) -> str:
        return _registered("optimizer", value)

    @field_validator("lr_scheduler")
    @classmethod
    def _scheduler(cls, value: str) -> str:
        return _registered("lr_scheduler", value)


def training_settings(table: TrainingSettings) -> TrainingSettings:
    """The training settings of ``table`` (a config table that extends them) as a plain :class:`TrainingSettings`."""
    values: dict[str, Any] = {name: getattr(table, name) for name in TrainingSettings.model_fields}
    return TrainingSettings.model_validate(values)
