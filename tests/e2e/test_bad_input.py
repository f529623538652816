"""Bad input on the command line: exit code 2, one ``error:`` line on stderr naming what is wrong, no traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netcarve.data.synthetic import synthetic_jsc_columns
from tests.data.test_jsc import write_csv
from tests.e2e.cli import run, run_error

WIDTH_1E6 = """
[passes.width.seq_blocks_2.config]
name = "output_only"
channel_multiplier = 1e6
"""


def csv_with(path: Path, change: str) -> Path:
    cols: dict[str, np.ndarray] = {k: v.astype(object) for k, v in synthetic_jsc_columns(120, seed=4).items()}
    if change == "text":
        cols["j_d2_b1_mmdt"][6] = "n/a"
    elif change == "nan":
        cols["j_zlogz"][2] = float("nan")
    elif change == "few":
        cols = {k: v[:4] for k, v in cols.items()}
    elif change == "one-class":
        cols["class"][:] = "q"
    return write_csv(path, cols)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("text", "column 'j_d2_b1_mmdt' has the non-numeric value 'n/a' in data row 7 (line 8)"),
        ("nan", "column 'j_zlogz' has NaN in data row 3 (line 4)"),
        ("few", "too few rows to split train/val/test 70%/10%/20%: at least 7 are needed, the data has 4 rows"),
        ("one-class", "every row has the same class 'q': a classifier needs at least two classes"),
    ],
)
def test_bad_csv(in_tmp: Path, change: str, expected: str) -> None:
    csv_with(in_tmp / "jets.csv", change)
    line = run_error("train", "jsc-toy", "jets.csv", "--max-epochs", "1")
    assert line == f"error: jets.csv: {expected}" or line.startswith(f"error: jets.csv: {expected}: ")
    assert not (in_tmp / "runs").exists()  # nothing was started


@pytest.mark.parametrize("value", ["0", "-5"])
@pytest.mark.parametrize("command", ["train", "test", "transform"])
def test_batch_size_below_one(in_tmp: Path, command: str, value: str) -> None:
    line = run_error(command, "jsc-toy", "digits", "--batch-size", value, "--load", "x.pt")
    assert line == f"error: --batch-size must be at least 1 (got {value})"


def test_directory_where_a_file_is_expected(in_tmp: Path) -> None:
    (in_tmp / "d").mkdir()
    cases = {
        ("analyze", "jsc-toy", "digits", "--output", "d", "--force"): "--output 'd' is a directory",
        ("analyze", "jsc-toy", "digits", "--output", "d"): "--output 'd' is a directory",
        ("transform", "jsc-toy", "digits", "--config", "w.toml", "--output", "d"): "--output 'd' is a directory",
        ("train", "jsc-toy", "digits", "--config", "d"): "config file 'd' is a directory, not a file",
        ("analyze", "jsc-toy", "digits", "--config", "d"): "config file 'd' is a directory, not a file",
        ("test", "jsc-toy", "digits", "--load", "d"): "checkpoint 'd' is a directory, not a file",
        ("train", "jsc-toy", "digits", "--load", "d"): "checkpoint 'd' is a directory, not a file",
        ("train", "jsc-toy", "d"): "dataset 'd' is a directory: give a file (.csv",
        ("train", "jsc-toy", "jsc:d"): "dataset file 'd' is a directory, not a file",
    }
    (in_tmp / "w.toml").write_text(WIDTH_1E6.replace("1e6", "2"))
    for args, expected in cases.items():
        line = run_error(*args)
        assert line.startswith(f"error: {expected}"), (args, line)
    assert not (in_tmp / "runs").exists()


def test_channel_multiplier_too_large_to_allocate(in_tmp: Path) -> None:
    (in_tmp / "w.toml").write_text(WIDTH_1E6)
    line = run_error("transform", "jsc-toy", "digits", "--config", "w.toml")
    assert line.startswith("error: layer 'seq_blocks_2' would have 8,000,000 outputs (520,000,000 parameters, 1.94 GiB")
    assert "too large to allocate (at most 65,536 channels a layer)" in line


def test_search_whose_first_configuration_is_too_large(in_tmp: Path) -> None:
    """The first configuration of the space is built as a check before any trial: the width pass refuses it.
    (The search logs the size of its space first, so only the last stderr line is the error.)"""
    (in_tmp / "s.toml").write_text(
        'model = "jsc-three-linear-layers"\ndataset = "digits"\n'
        '[search.search_space]\nname = "graph/width/channel_multiplier"\n'
        '[search.search_space.seed.seq_blocks_2.config]\nname = ["output_only"]\nchannel_multiplier = [1e6]\n'
        '[search.strategy]\neval_mode = false\n[search.strategy.setup]\nn_trials = 1\nsampler = "random"\n'
        "[search.strategy.metrics]\naccuracy.direction = 'maximize'\n"
    )
    code, out = run("search", "--config", "s.toml")
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in out
    assert len(errors) == 1 and "'seq_blocks_2' would have 16,000,000 outputs" in errors[0]
    assert "too large to allocate" in errors[0]


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        (
            "[passes.quantize.linear.config]\nname = 'integer'\nweight_width = 0\n",
            "passes.quantize.linear.config.weight_width",
        ),
        ("[passes.width]\ninit = 'zeros'\n", "passes.width.init"),
        (
            "[passes.width.seq_blocks_2.config]\nchanel_multiplier = 2\n",
            "passes.width.seq_blocks_2.config.chanel_multiplier",
        ),
    ],
)
def test_config_errors_name_the_users_key(in_tmp: Path, toml: str, key: str) -> None:
    (in_tmp / "p.toml").write_text(toml)
    line = run_error("transform", "jsc-toy", "digits", "--config", "p.toml")
    assert line.startswith("error: p.toml: ")
    assert f"'{key}'" in line
    assert "entries" not in line


@pytest.mark.parametrize(
    ("multiplier", "expected"),
    [
        # 8 outputs × 1e9: not even the channel map (8 bytes a channel) is built
        ("1e9", "error: layer 'seq_blocks_2' would have 8,000,000,000 outputs (8 now): too large to allocate"),
        ("inf", "invalid value for 'passes.width.seq_blocks_2.config.channel_multiplier': Input should be a finite"),
    ],
)
def test_absurd_multipliers_are_refused_before_any_allocation(in_tmp: Path, multiplier: str, expected: str) -> None:
    (in_tmp / "w.toml").write_text(WIDTH_1E6.replace("1e6", multiplier))
    assert expected in run_error("transform", "jsc-toy", "digits", "--config", "w.toml")


def test_seeds_outside_32_bits_and_text_checkpoints(in_tmp: Path) -> None:
    """Seeds are 0..2^32 − 1 (what Optuna's samplers take); a text file given as a checkpoint is corrupt."""
    line = run_error("train", "jsc-toy", "digits", "--seed", "99999999999999999999")
    assert "invalid value for --seed: Input should be less than or equal to 4294967295" in line
    (in_tmp / "text.pt").write_text("hello\n")
    line = run_error("test", "jsc-toy", "digits", "--load", "text.pt")
    assert line.startswith("error: checkpoint 'text.pt' is corrupt or not a torch file (KeyError: ")


@pytest.mark.parametrize(("label", "shown"), [(1e20, "1e+20"), (0.5, "0.5"), (7, "7.0")])
def test_class_labels_outside_0_to_4_name_the_value_and_row(in_tmp: Path, label: float, shown: str) -> None:
    cols: dict[str, np.ndarray] = {k: v.astype(object) for k, v in synthetic_jsc_columns(120, seed=4).items()}
    cols["class"] = np.arange(120, dtype=np.float64) % 5
    cols["class"][9] = label
    write_csv(in_tmp / "c.csv", cols)
    line = run_error("train", "jsc-toy", "c.csv")
    assert (
        line == f"error: c.csv: column 'class' has {shown} in data row 10 (line 11): labels must be 0..4 or g/q/w/z/t"
    )


def test_output_path_through_a_file(in_tmp: Path) -> None:
    """A run dir, a checkpoint or a report asked for under an existing file (``afile/…``), or a project_dir
    that is a file, is one error line naming the path as typed, before anything is written; the file is
    intact."""
    from tests.e2e.cli import CONFIGS

    (in_tmp / "afile").write_text("mine")
    (in_tmp / "w.toml").write_text(WIDTH_1E6.replace("1e6", "2"))
    search = ("--config", str(CONFIGS / "compare_quantize_digits.toml"))
    is_file = "project_dir 'afile' is a file, not a directory"
    under = "cannot be written: 'afile' is a file, not a directory"
    cases = {
        ("train", "jsc-toy", "digits", "--set", "project_dir=afile"): is_file,
        ("train", "jsc-toy", "digits", "--set", "project_dir=afile/sub"): f"project_dir 'afile/sub' {under}",
        ("train", "jsc-toy", "digits", "--project", "afile", "--set", "project_dir=."): "project folder 'afile'",
        ("search", *search, "--set", "project_dir=afile"): is_file,
        ("search", *search, "--storage", "afile/s.journal"): f"the journal storage 'afile/s.journal' {under}",
        ("compare", *search, "--set", "project_dir=afile", "--seeds", "0"): is_file,
        ("transform", "jsc-toy", "digits", "--config", "w.toml", "--output", "afile/x.pt"): "--output 'afile/x.pt'",
        ("analyze", "jsc-toy", "digits", "--output", "afile/x.txt"): f"--output 'afile/x.txt' {under}",
    }  # fmt: skip
    for args, expected in cases.items():
        line = run_error(*args)
        assert line.startswith(f"error: {expected}"), (args, line)
        assert "is a file, not a directory" in line, (args, line)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["afile", "w.toml"]
    assert (in_tmp / "afile").read_text() == "mine"


@pytest.mark.parametrize("option", ["--n-trials", "--n-jobs"])
def test_search_option_is_blamed_not_the_toml(in_tmp: Path, option: str) -> None:
    from tests.e2e.cli import CONFIGS

    line = run_error("search", "--config", str(CONFIGS / "demo_search_digits.toml"), option, "0")
    assert line == f"error: invalid value for {option}: Input should be greater than or equal to 1 (got 0)"
    assert not (in_tmp / "runs").exists()


@pytest.mark.parametrize(("url", "file"), [("missing", "missing"), ("journal://j/missing", "j/missing"),
                                           ("sqlite:///missing.db", "missing.db")])  # fmt: skip
def test_worker_on_a_storage_that_does_not_exist_leaves_nothing(in_tmp: Path, url: str, file: str) -> None:
    """A worker joins an existing study: a journal or SQLite file that does not exist is one error line, and
    no empty file is left behind (Optuna creates one when it opens a path)."""
    (in_tmp / "j").mkdir()
    line = run_error("worker", "--storage", url, "--study-name", "x")
    assert line == f"error: the study storage {file!r} does not exist: give the file a search wrote"
    assert [p.name for p in in_tmp.rglob("*")] == ["j"]
