"""The top-level config (MASE's ``ch`` keys) and its sub-tables."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from netcarve.config.base import Strict
from netcarve.config.passes import PASS_ALIASES, PASS_CONFIGS, prefixed_validation_error
from netcarve.config.search import SearchConfig

log = logging.getLogger(__name__)

#: Keys MASE accepted that have no effect in netcarve: accepted with a warning, never silently.
NO_EFFECT_KEYS = (
    "num_workers",
    "num_devices",
    "num_nodes",
    "strategy",
    "trainer_precision",
    "accumulate_grad_batches",
    "is_to_auto_requeue",
    "github_ci",
    "disable_dataset_cache",
    "target",
    "num_targets",
    "is_pretrained",
    "max_token_len",
)


class TransformTable(Strict):
    """MASE's ``[transform]`` table; ``style`` has no effect here (every transform works on the graph)."""

    style: str | None = None


class RunConfig(Strict):
    """Every key a netcarve config accepts at the top level (README: Config format)."""

    model: str | None = None
    dataset: str | None = None
    task: Literal["cls", "classification"] = "cls"
    max_epochs: int = Field(default=10, ge=1)
    max_steps: int | None = Field(default=None)
    batch_size: int = Field(default=256, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    training_optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"
    num_warmup_steps: int = Field(default=0, ge=0)
    seed: int = 42
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    project: str | None = None
    project_dir: str = "runs"
    load_name: str | None = None
    load_type: str | None = None
    log_every_n_steps: int = Field(default=50, ge=1)

    # accepted with a warning, no effect
    num_workers: Any = None
    num_devices: Any = None
    num_nodes: Any = None
    strategy: Any = None
    trainer_precision: Any = None
    accumulate_grad_batches: Any = None
    is_to_auto_requeue: Any = None
    github_ci: Any = None
    disable_dataset_cache: Any = None
    target: Any = None
    num_targets: Any = None
    is_pretrained: Any = None
    max_token_len: Any = None
    transform: TransformTable | None = None

    passes: dict[str, Any] = Field(default_factory=dict)
    search: SearchConfig | None = None

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int | None) -> int | None:
        return None if value is None or value <= 0 else value

    @field_validator("passes", mode="before")
    @classmethod
    def _passes(cls, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValueError("[passes] must be a table of pass tables")
        out: dict[str, Any] = {}
        for name, table in value.items():
            canonical = PASS_ALIASES.get(str(name), str(name))
            model = PASS_CONFIGS.get(canonical)
            if model is None:
                known = ", ".join(PASS_CONFIGS)
                raise ValueError(f"unknown pass {name!r} (known: {known})")
            try:
                out[name] = table if isinstance(table, model) else model.model_validate(table)
            except ValidationError as exc:  # keep the pass name in the location: passes.<name>.…
                raise prefixed_validation_error(exc, name) from exc
        return out

    @model_validator(mode="after")
    def _warn_no_effect(self) -> RunConfig:
        for key in NO_EFFECT_KEYS:
            if getattr(self, key) is not None:
                log.warning("config key %r has no effect in netcarve (accepted for MASE compatibility)", key)
        if self.transform is not None and self.transform.style is not None:
            log.warning("config key 'transform.style' has no effect in netcarve (transforms work on the graph)")
        return self


def effective_dict(config: RunConfig) -> dict[str, Any]:
    """The effective config as a plain dict in the TOML layout (passes flattened as MASE writes them)."""
    data = config.model_dump(exclude_none=True, exclude={"passes"})
    passes = {name: table.to_mase_dict() for name, table in config.passes.items()}
    if passes:
        data["passes"] = passes
    return data
