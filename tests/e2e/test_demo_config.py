"""configs/demo_search_digits.toml, the search `make demo` runs: its space and a short real run."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.e2e.cli import CONFIGS, run

CONFIG = str(CONFIGS / "demo_search_digits.toml")


def test_demo_space_size_in_dry_run(in_tmp: Path) -> None:
    """Widths {0.25, 0.5, 1} for two layers × weight widths {3, 4, 6, 8} = 3 · 3 · 4 = 36 configurations."""
    code, out = run("search", "--config", CONFIG, "--dry-run")
    assert code == 0, out
    assert "36 configurations" in out


def test_demo_search_runs_and_shrinks(in_tmp: Path) -> None:
    """Four short trials: every candidate's model_size is at most the float model's bytes.

    hls4ml-jet on digits in float: (64·64+64) + (64·32+32) + (32·32+32) + (32·10+10) = 7626 params
    → 30 504 bytes; any searched candidate is narrower or equal and stores its Linear weights in ≤ 8 bits.
    """
    args = ["search", "--config", CONFIG, "--project", "d", "--n-trials", "4",
            "--set", "search.strategy.sw_runner.basic_train.max_epochs=1",
            "--set", "search.constraints.accuracy.min=0"]  # one epoch is not enough for 90 %  # fmt: skip
    code, out = run(*args)
    assert code == 0, out
    assert "Best trial(s)" in out
    run_dir = in_tmp / "runs" / "d" / "latest"
    with (run_dir / "trials.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["state"] == "COMPLETE"]
    assert len(rows) == 4
    assert all(float(r["model_size"]) < 30_504 for r in rows)
    assert (run_dir / "report.html").is_file()
