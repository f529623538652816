"""Search test helpers: small configs as dicts, and a search run in this process."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from netcarve.config.loader import validate_config
from netcarve.config.run import RunConfig
from netcarve.search.session import Session

WIDTH_SEED: dict[str, Any] = {
    "default": {"config": {"name": [None], "channel_multiplier": [1]}},
    "seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2]}},
    "seq_blocks_4": {"config": {"name": ["both"], "channel_multiplier": [1, 2]}},
    "seq_blocks_6": {"config": {"name": ["input_only"], "parent_block_name": ["seq_blocks_4"]}},
}

QUANT_SEED: dict[str, Any] = {
    "default": {"config": {"name": [None]}},
    "seq_blocks_2": {"config": {"name": ["integer"], "data_in_width": [4, 8], "weight_width": [2, 4, 8]}},
    "seq_blocks_5": {"config": {"name": ["integer"], "weight_width": [2, 8]}},
}


def search_dict(
    tmp_path: Path,
    *,
    space: str = "graph/width/channel_multiplier",
    seed: dict[str, Any] | None = None,
    model: str = "jsc-three-linear-layers",
    dataset: str = "synthetic-jsc:2000",
    sampler: str = "brute_force",
    n_trials: int | None = None,
    eval_mode: bool = False,
    metrics: dict[str, Any] | None = None,
    **setup: Any,
) -> dict[str, Any]:
    """A search config (MASE layout) with a 1-epoch retraining on a small set."""
    strategy: dict[str, Any] = {
        "eval_mode": eval_mode,
        "sw_runner": {"basic_train": {"max_epochs": 1, "batch_size": 128, "learning_rate": 5e-3}},
        "setup": {"sampler": sampler, **setup},
        "metrics": metrics or {"accuracy": {"scale": 1.0, "direction": "maximize"}},
    }
    if n_trials is not None:
        strategy["setup"]["n_trials"] = n_trials
    default_seed = WIDTH_SEED if "width" in space else QUANT_SEED
    return {
        "model": model,
        "dataset": dataset,
        "max_epochs": 2,
        "project": "t",
        "project_dir": str(tmp_path / "runs"),
        "search": {
            "search_space": {"name": space, "setup": {"by": "name"}, "seed": copy.deepcopy(seed or default_seed)},
            "strategy": strategy,
        },
    }


def config(data: dict[str, Any]) -> RunConfig:
    return validate_config(data)


def run_search(cfg: RunConfig, n_jobs: int = 1) -> Session:
    from netcarve.search.api import finish, prepare_search, start_search
    from netcarve.search.runner import run_study

    session = start_search(prepare_search(cfg), None, None)
    run_study(session, n_jobs, None, lambda: None)
    finish(session)
    return session


def trials(session: Session, state: str | None = None) -> list[Any]:
    return [t for t in session.study.get_trials() if state is None or t.state.name == state]
