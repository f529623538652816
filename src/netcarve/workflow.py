"""Steps shared by the commands: resolve model and dataset from a config, build the graph, train settings."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from netcarve.config.run import RunConfig, effective_dict
from netcarve.config.training import training_settings
from netcarve.data import TensorSplits, load_dataset
from netcarve.device import resolve_device
from netcarve.errors import ConfigError
from netcarve.ir.graph import Graph
from netcarve.provenance import file_refs, resolved_dataset, resolved_model
from netcarve.runs import create_run_dir, write_run_files
from netcarve.train.checkpoint import build_graph, load_graph
from netcarve.train.loop import TrainConfig


def require_model_and_dataset(config: RunConfig) -> tuple[str, str]:
    if not config.model:
        raise ConfigError("no model given: pass MODEL on the command line or set 'model' in the config")
    if not config.dataset:
        raise ConfigError("no dataset given: pass DATASET on the command line or set 'dataset' in the config")
    return config.model, config.dataset


def project_name(config: RunConfig) -> str:
    if config.project:
        return config.project
    model, dataset = require_model_and_dataset(config)
    raw = f"{Path(model.split(':')[0]).stem if ':' in model else model}_{Path(dataset).stem}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw)


def load_splits(config: RunConfig) -> TensorSplits:
    _, dataset = require_model_and_dataset(config)
    return load_dataset(dataset).to(resolve_device(config.accelerator))


def initial_graph(
    config: RunConfig, splits: TensorSplits, load: str | None = None, *, relocated: bool = False
) -> Graph:
    """The model to work on: a checkpoint's (``load`` or ``load_name``) or a fresh, seeded one. ``relocated``:
    ``config.model`` is the checkpoint's model file moved and already checked (see :func:`load_graph`)."""
    model, _ = require_model_and_dataset(config)
    path = load or config.load_name
    torch.manual_seed(config.seed)
    if path:
        graph = load_graph(path, model, splits.info, config.load_type, relocated=relocated)
    else:
        graph = build_graph(model, splits.info)
    device = splits.train.x.device
    if device.type != "cpu":
        graph.module.to(device)
    return graph


def train_config(config: RunConfig) -> TrainConfig:
    """The top-level training settings of ``config``."""
    return training_settings(config)


def recorded_config(config: RunConfig) -> RunConfig:
    """``config`` as a run dir records it: a model file's and a dataset file's resolved paths, so that the
    run's config works from any directory (README: Runs and files)."""
    update = {}
    if config.model:
        update["model"] = resolved_model(config.model)
    if config.dataset:
        update["dataset"] = resolved_dataset(config.dataset)
    return config.model_copy(update=update)


def start_run(config: RunConfig, command: str, splits: TensorSplits | None = None) -> Path:
    """Create the run dir and write ``config.toml`` and ``manifest.json`` (with the sha256 of a model file
    and of a dataset file: ``files``)."""
    run_dir = create_run_dir(config.project_dir, project_name(config))
    extra = {
        "dataset_source": splits.source if splits is not None else None,
        "files": file_refs(config.model, config.dataset),
    }
    write_run_files(run_dir, effective_dict(recorded_config(config)), command, config.seed, extra)
    return run_dir
