"""The CLI end to end on the embedded data: train → test, bad input, fast --help."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.e2e.cli import ROOT, run


def test_hls4ml_jet_on_digits_with_shipped_config(in_tmp: Path) -> None:
    """The shipped digits config reaches >= 95 % test accuracy; test reproduces the number from best.pt."""
    code, out = run(
        "train", "hls4ml-jet", "digits", "--config", str(ROOT / "configs/digits_train.toml"), "--project", "p"
    )
    assert code == 0, out
    run_dir = in_tmp / "runs" / "p" / "latest"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.95
    assert {"config.toml", "manifest.json", "best.pt", "last.pt"} <= {p.name for p in run_dir.iterdir()}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["seed"] == 42 and manifest["command"] == "train"
    code, out = run("test", "hls4ml-jet", "digits", "--load", str(run_dir / "best.pt"), "--project", "p")
    assert code == 0, out
    tested = json.loads((in_tmp / "runs" / "p" / "latest" / "metrics.json").read_text())
    assert tested["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert len(list((in_tmp / "runs" / "p").iterdir())) == 3  # two runs + latest: nothing overwritten


def test_mase_example_config_trains_with_dataset_override(in_tmp: Path) -> None:
    code, out = run(
        "train",
        "--config",
        str(FIXTURES / "mase_jsc_by_type.toml"),
        "--set",
        "dataset=synthetic-jsc:2000",
        "--max-epochs",
        "1",
    )
    assert code == 0, out
    assert "no CUDA device" in out  # accelerator = "gpu" falls back with a warning
    run_dir = in_tmp / "runs" / "jsc-tiny" / "latest"  # the fixture's project
    assert tomllib.loads((run_dir / "config.toml").read_text())["dataset"] == "synthetic-jsc:2000"
    # the override took effect: synthetic-jsc:2000 has 2000 rows, 70 % = 1400 train rows, in batches of 512
    # (the fixture's batch_size): ceil(1400 / 512) = 3 steps for the one epoch; JSC would have needed 1000s
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "jsc-tyo", "digits"], "unknown model 'jsc-tyo'; did you mean 'jsc-toy'"),
        (["train", "jsc-toy", "digit"], "unknown dataset 'digit'; did you mean 'digits'"),
        (
            ["train", "jsc-toy", "digits", "--set", "max_epoch=1"],
            "unknown key 'max_epoch'; did you mean 'max_epochs'",
        ),
        (["train", "jsc-toy", "digits", "--set", "batch_size=big"], "invalid value for 'batch_size'"),
        (["test", "jsc-toy", "digits", "--load", "none.pt"], "checkpoint 'none.pt' does not exist"),
        (["train", "jsc-toy", "cols.csv"], "missing JSC columns"),
    ],
)
def test_bad_input_one_line_exit_2(in_tmp: Path, args: list[str], message: str) -> None:
    (in_tmp / "cols.csv").write_text("a,b,class\n1,2,g\n")
    code, out = run(*args)
    assert code == 2
    assert message in out
    assert "Traceback" not in out


def test_not_toml_config(in_tmp: Path) -> None:
    (in_tmp / "x.toml").write_bytes(b"\x00\x01 not toml [")
    code, out = run("train", "jsc-toy", "digits", "--config", "x.toml")
    assert code == 2 and "x.toml" in out


def test_help_does_not_import_torch() -> None:
    code = "import sys; from netcarve.cli.app import app; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_models_and_datasets_list(in_tmp: Path) -> None:
    code, out = run("models")
    assert code == 0 and "jsc-three-linear-layers" in out and "661" in out
    code, out = run("datasets")
    assert code == 0 and "synthetic-jsc" in out and "breast-cancer" in out
    code, out = run("--version")
    assert code == 0 and out.startswith("netcarve ")
