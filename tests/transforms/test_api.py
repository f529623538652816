"""The library runner behind ``netcarve transform``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netcarve.configure import build_config
from netcarve.data import load_dataset
from netcarve.errors import CheckpointError, ConfigError
from netcarve.train import load_graph
from netcarve.transforms.api import MEASURES, measure, run_transform

QUANTIZE = [
    "passes.quantize.by='type'",
    "passes.quantize.linear.config.name='integer'",
    "passes.quantize.linear.config.weight_width=4",
    "passes.quantize.linear.config.weight_frac_width=2",
]


def config_in(tmp_path: Path, *sets: str):  # type: ignore[no-untyped-def]
    flags = {"model": "jsc-toy", "dataset": "synthetic-jsc:600"}
    return build_config(None, flags, [f"project_dir='{tmp_path}'", "project='p'", *sets])


def test_run_transform_writes_what_it_returns(tmp_path: Path) -> None:
    """The checkpoint holds the transformed graph (its measures are the outcome's "after"); 4-bit weights
    shrink the stored size; metrics.json holds both sides."""
    outcome = run_transform(config_in(tmp_path, *QUANTIZE))
    assert outcome.checkpoint == outcome.run_dir / "transformed.pt"
    assert list(outcome.metrics_before) == list(MEASURES) == list(outcome.metrics_after)
    assert outcome.metrics_after["size_bits"] < outcome.metrics_before["size_bits"]
    splits = load_dataset("synthetic-jsc:600")
    reloaded = load_graph(outcome.checkpoint, "jsc-toy", splits.info)
    assert measure(reloaded, splits.val, 8192) == outcome.metrics_after
    written = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert written == {"checkpoint": str(outcome.checkpoint), "split": "val", "before": outcome.metrics_before,
                       "after": outcome.metrics_after}  # fmt: skip


def test_nothing_to_do_or_an_existing_output_is_refused_first(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no passes table"):
        run_transform(config_in(tmp_path))
    taken = tmp_path / "taken.pt"
    taken.write_bytes(b"")
    with pytest.raises(CheckpointError, match="already exists"):
        run_transform(config_in(tmp_path, *QUANTIZE), output=taken)
    assert not (tmp_path / "p").exists()  # refused before any run dir was made
