"""The top-level config (MASE's ``ch`` keys) and its sub-tables."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from netcarve.config.base import Strict
from netcarve.config.pass_registry import transform_config_model, transform_pass_names
from netcarve.config.passes import prefixed_validation_error
from netcarve.config.search import SearchConfig
from netcarve.config.training import TrainingSettings

#: MASE's ``load_type`` values: a PyTorch state dict, a Lightning checkpoint, a pickled MASE graph module
LoadType = Literal["pt", "pl", "mz"]

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


#: the TOML key of a training setting at the top level, where it differs from the field name (MASE's name)
TOP_LEVEL_KEYS = {"optimizer": "training_optimizer"}

#: MASE's ``task`` values that mean classification, the only task netcarve does
CLASSIFICATION_TASKS = ("cls", "classification")


class RunConfig(TrainingSettings):
    """Every key a netcarve config accepts at the top level (README: Config format).

    The training keys are those of :class:`TrainingSettings`, inherited (``optimizer`` is written
    ``training_optimizer`` here, as in MASE).
    """

    model_config = ConfigDict(alias_generator=lambda name: TOP_LEVEL_KEYS.get(name, name), populate_by_name=False)

    model: str | None = None
    """Registered model name or ``module:callable`` / ``file.py:callable``."""
    dataset: str | None = None
    """Dataset name or a JSC file path."""
    task: str = "cls"
    """MASE's task: netcarve only classifies, so "cls" or "classification"."""
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    """Device to train on; a missing device falls back to the CPU with a warning."""
    project: str | None = None
    """Run dir name under ``project_dir`` (default ``<model>_<dataset>``)."""
    project_dir: str = "runs"
    """Where run dirs are created."""
    load_name: str | None = None
    """Checkpoint to start from (as ``--load``)."""
    load_type: LoadType | None = None
    """What MASE was told ``load_name`` is: "pt" (state dict), "pl" (Lightning), "mz" (MASE graph); a
    mismatch with the file is warned about when it is loaded."""

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

    @field_validator("task")
    @classmethod
    def _classification(cls, value: str) -> str:
        if value not in CLASSIFICATION_TASKS:
            raise ValueError("netcarve only does classification: use 'cls' or 'classification'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _basic_train_seed(cls, data: Any) -> Any:
        """An unset (or "NA") ``basic_train.seed`` is the top-level seed, written into the table."""
        try:
            basic = data["search"]["strategy"]["sw_runner"]["basic_train"]
        except (KeyError, TypeError):
            return data
        if not isinstance(basic, dict) or basic.get("seed") is not None:
            return data
        seed = data.get("seed")
        if seed is None:
            return data  # the top-level default seed is also basic_train's default
        data = dict(data)
        search = data["search"] = dict(data["search"])
        strategy = search["strategy"] = dict(search["strategy"])
        sw_runner = strategy["sw_runner"] = dict(strategy["sw_runner"])
        sw_runner["basic_train"] = {**basic, "seed": seed}
        return data

    @field_validator("passes", mode="before")
    @classmethod
    def _passes(cls, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValueError("[passes] must be a table of pass tables")
        out: dict[str, Any] = {}
        for name, table in value.items():
            model = transform_config_model(str(name))
            if model is None:
                known = ", ".join(transform_pass_names())
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
    data = config.model_dump(by_alias=True, exclude_none=True, exclude={"passes"})
    data = {**{k: data.pop(k) for k in ("model", "dataset") if k in data}, **data}  # what, then how
    passes = {name: table.to_mase_dict() for name, table in config.passes.items()}
    if passes:
        data["passes"] = passes
    return data
