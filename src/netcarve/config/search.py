"""Config models of ``[search.*]`` (README: Search, Config format): search space, strategy, constraints."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field, field_validator

from netcarve.config.base import Strict
from netcarve.config.training import MAX_SEED, Epochs, TrainingSettings

log = logging.getLogger(__name__)


class SpaceSetup(Strict):
    by: Literal["name", "type"] = "name"


def _choices(value: dict[str, list[Any]]) -> dict[str, list[Any]]:
    for key, choices in value.items():
        if len(choices) == 0:
            raise ValueError(f"choice list of {key!r} is empty")
    return value


class SeedEntry(Strict):
    config: dict[str, list[Any]]

    _non_empty = field_validator("config")(_choices)


class SubSpaceConfig(Strict):
    setup: SpaceSetup = SpaceSetup()
    seed: dict[str, SeedEntry] = Field(default_factory=dict)
    #: choices of the pass's own keys (not per layer), e.g. the quantize pass's ``beta``: searched like a leaf
    pass_config: dict[str, list[Any]] = Field(default_factory=dict)

    _pass_choices = field_validator("pass_config")(_choices)


class SearchSpaceConfig(Strict):
    name: str
    setup: SpaceSetup = SpaceSetup()
    seed: dict[str, SeedEntry] = Field(default_factory=dict)
    quantize: SubSpaceConfig | None = None
    width: SubSpaceConfig | None = None
    pass_config: dict[str, list[Any]] = Field(default_factory=dict)

    _pass_choices = field_validator("pass_config")(_choices)


DataLoaderName = Literal["train_dataloader", "val_dataloader", "test_dataloader"]


class BasicEvaluation(Strict):
    data_loader: DataLoaderName = "val_dataloader"
    num_samples: int | None = Field(default=None, ge=1)


class BasicTrain(TrainingSettings):
    """``sw_runner.basic_train``: retrain every candidate with these settings (the keys of
    :class:`TrainingSettings`). An unset ``seed`` is the top-level seed (filled in by RunConfig)."""

    name: str | None = None
    """MASE's runner name; informational."""
    data_loader: DataLoaderName = "train_dataloader"
    """The split the candidates train on."""
    max_epochs: Epochs = 1
    """Epochs of each candidate's training (one unless set)."""


class SwRunner(Strict):
    basic_evaluation: BasicEvaluation | None = None
    basic_train: BasicTrain | None = None


class AverageBitwidthRunner(Strict):
    compare_to: float = Field(default=32.0, gt=0)


class HwRunner(Strict):
    average_bitwidth: AverageBitwidthRunner | None = None


#: the largest population a config may ask for (memory grows linearly with it)
MAX_POPULATION = 256


class StrategySetup(Strict):
    n_jobs: int = Field(default=1, ge=1)
    n_trials: int | None = Field(default=20, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    #: seconds between the heartbeats of a running trial on a database storage; a trial silent for twice
    #: this long is failed and its configuration run again by another worker
    heartbeat_interval: int = Field(default=30, ge=1, le=3600)
    sampler: str = "tpe"
    #: retrained candidates trained together in one batched pass: a count, or "auto" (as many as fit the
    #: memory budget, at most 32; model-based samplers at most a quarter of n_trials); 1 = one by one
    population: int | Literal["auto"] = "auto"
    #: Optuna pruner that stops retrained candidates early: none, median, successive_halving, hyperband
    pruner: str = "none"
    sum_scaled_metrics: bool = True
    direction: str = "maximize"

    @field_validator("population", mode="before")
    @classmethod
    def _population(cls, value: Any) -> int | str:
        """A count 1 … MAX_POPULATION or "auto"; anything else (a bool, a fraction, another word) is refused."""
        if isinstance(value, bool):
            raise ValueError("a boolean is not an integer")  # the convention of every number field (Strict)
        if isinstance(value, str) and value == "auto":
            return value
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_POPULATION:
            return value
        raise ValueError(f'must be an integer 1 … {MAX_POPULATION} or "auto"')

    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)


class MetricConfig(Strict):
    scale: float = 1.0
    direction: str = "maximize"


class StrategyConfig(Strict):
    name: Literal["optuna"] = "optuna"
    eval_mode: bool = True
    sw_runner: SwRunner = SwRunner()
    hw_runner: HwRunner = HwRunner()
    setup: StrategySetup = StrategySetup()
    metrics: dict[str, MetricConfig] = Field(default_factory=dict)


class Bound(Strict):
    min: float | None = None
    max: float | None = None


class SearchConfig(Strict):
    search_space: SearchSpaceConfig | None = None
    strategy: StrategyConfig = StrategyConfig()
    constraints: dict[str, Bound] = Field(default_factory=dict)
