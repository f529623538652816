"""A real, tiny search run on digits (session-scoped): 8 random trials of a width space, two objectives.

Space: jsc-three-linear-layers (64→16→16→10 on digits) with seq_blocks_2 × {1, 2, 3, 4} and seq_blocks_4 ×
{1, 2, 3} (12 configurations), each retrained for two epochs; objectives accuracy (max) and model_size (min,
float32 bytes: × (1, 1) = 1610 parameters = 6440 bytes); model_size ≤ 16 000 bytes prunes the wide ones
before training. With sampler seed 2 the run has complete, pruned and reused trials, and a complete trial
that another dominates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

WIDTH_SEED: dict[str, Any] = {
    "default": {"config": {"name": [None], "channel_multiplier": [1]}},
    "seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2, 3, 4]}},
    "seq_blocks_4": {"config": {"name": ["both"], "channel_multiplier": [1, 2, 3]}},
}


def width_search(project_dir: Path, **setup: Any) -> dict[str, Any]:
    return {
        "model": "jsc-three-linear-layers",
        "dataset": "digits",
        "project": "rep",
        "project_dir": str(project_dir),
        "search": {
            "search_space": {"name": "graph/width/channel_multiplier", "setup": {"by": "name"}, "seed": WIDTH_SEED},
            "constraints": {"model_size": {"max": 16_000}},
            "strategy": {
                "eval_mode": False,
                "sw_runner": {"basic_train": {"max_epochs": 2, "batch_size": 128, "learning_rate": 5e-3}},
                "setup": {"sampler": "random", "n_trials": 8, "seed": 2, "sum_scaled_metrics": False, **setup},
                "metrics": {
                    "accuracy": {"scale": 1.0, "direction": "maximize"},
                    "model_size": {"scale": 1.0, "direction": "minimize"},
                },
            },
        },
    }


def run_search(data: dict[str, Any]) -> Path:
    """A search through the Python API, as `netcarve search` runs it; returns the run dir."""
    from netcarve.config.loader import validate_config
    from netcarve.search.api import finish, prepare_search, start_search
    from netcarve.search.runner import run_study

    session = start_search(prepare_search(validate_config(data)), None, None)
    run_study(session, 1, None, lambda: None)
    finish(session)
    assert session.run_dir is not None
    return session.run_dir


@pytest.fixture(scope="session")
def search_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_search(width_search(tmp_path_factory.mktemp("report") / "runs"))
