"""A run made with a user model and a dataset file by relative paths works from another directory and after
it is moved with its files (issue 20): ``export``, ``test`` and ``search --resume`` find what the run
recorded (resolved paths) or take ``--model`` / ``--dataset``, checked against the recorded sha256."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from netcarve.data.synthetic import synthetic_jsc_columns
from tests.data.test_jsc import write_csv
from tests.e2e.cli import run


def error_line(*args: str) -> str:
    """As ``tests.e2e.cli.run_error``, for a moved run dir: the INFO line that it uses its own study.journal may come
    first; the error is the one ``error:`` line, last."""
    from typer.testing import CliRunner

    from netcarve.cli.app import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2 and not isinstance(result.exception, Exception), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    return errors[0]


USER_MODEL = """
from torch import nn

def mlp(in_features, num_classes):
    return nn.Sequential(nn.Linear(in_features, 8), nn.ReLU(), nn.Linear(8, num_classes))
"""

# a quantization search of two configurations (weights 4 or 8 bits), the base trained first for one epoch
SEARCH = """
seed = 1
max_epochs = 1
batch_size = 64

[search.search_space]
name = "graph/quantize/mixed_precision_ptq"
[search.search_space.setup]
by = "type"
[search.search_space.seed.default.config]
name = ["NA"]
[search.search_space.seed.linear.config]
name = ["integer"]
data_in_width = [8]
data_in_frac_width = [4]
weight_width = [4, 8]
weight_frac_width = ["NA"]
bias_width = [8]
bias_frac_width = ["NA"]

[search.strategy]
name = "optuna"
eval_mode = true
[search.strategy.setup]
sampler = "brute_force"
[search.strategy.metrics]
accuracy.scale = 1.0
accuracy.direction = "maximize"
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A search run from tmp_path/a with m/odd.py:mlp and data/ok.csv (400 rows), then a/ moved to
    tmp_path/b/moved and the current directory tmp_path/elsewhere: (the moved a/, the moved run dir)."""
    a = tmp_path / "a"
    (a / "m").mkdir(parents=True)
    (a / "data").mkdir()
    (a / "m" / "odd.py").write_text(USER_MODEL)
    write_csv(a / "data" / "ok.csv", synthetic_jsc_columns(400, seed=1))
    (a / "q.toml").write_text(SEARCH)
    monkeypatch.chdir(a)
    code, out = run("search", "m/odd.py:mlp", "data/ok.csv", "--config", "q.toml", "--project", "p")
    assert code == 0, out
    run_dir = (a / "runs" / "p" / "latest").resolve()
    (tmp_path / "b").mkdir()
    new = shutil.move(a, tmp_path / "b" / "moved")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return Path(new), Path(new) / "runs" / "p" / run_dir.name


def test_export_test_and_resume_of_a_moved_run_with_its_files(moved: tuple[Path, Path]) -> None:
    """Export of best.pt and of a trial rebuilt from base.pt (bit-exact, 80 test rows: 20 % of 400), test of
    best.pt with the moved model, and --resume, each pointed at the moved files; the resume stores the new
    paths in the study, so a second --resume needs no option."""
    new, run_dir = moved
    model, data = str(new / "m" / "odd.py"), str(new / "data" / "ok.csv")
    a = new.parent.parent.resolve() / "a"  # where the run was made
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["files"]["model"] == {
        "spec": f"{a / 'm' / 'odd.py'}:mlp",
        "path": str(a / "m" / "odd.py"),
        "sha256": _sha(new / "m" / "odd.py"),
    }
    assert manifest["files"]["dataset"]["sha256"] == _sha(new / "data" / "ok.csv")
    assert f'model = "{a / "m" / "odd.py"}:mlp"' in (run_dir / "config.toml").read_text()
    code, out = run("export", str(run_dir), "--to", "alkaid", "--output", "fw", "--model", model, "--dataset", data)
    assert code == 0, out
    assert "check on test (80 rows): max |alkaid − netcarve| = 0" in out
    code, out = run("export", str(run_dir), "--to", "alkaid", "--output", "fw1", "--trial", "1", "--model", model,
                    "--dataset", data)  # fmt: skip
    assert code == 0, out
    assert json.loads(Path("fw1/export.json").read_text())["check"]["max_abs_diff"] == 0
    code, out = run("test", f"{model}:mlp", data, "--load", str(run_dir / "best.pt"), "--project", "t")
    assert code == 0, out
    code, out = run("search", "--resume", str(run_dir), "--model", model, "--dataset", data)
    assert code == 0, out
    assert "2 trials" in out
    code, out = run("search", "--resume", str(run_dir))
    assert code == 0, out


def test_export_of_a_checkpoint_in_a_moved_run_checks_on_the_runs_dataset_file(moved: tuple[Path, Path]) -> None:
    """A checkpoint records its dataset as 'jsc' (a file is read as JSC), not the file: ``export RUN/best.pt``
    checks on the dataset file its run dir's manifest records (not the real JSC set, which needs the network).
    Moved and not pointed at: one line naming the recorded file and --dataset; pointed at: the moved file's
    80 test rows (20 % of 400), bit-exact."""
    new, run_dir = moved
    model, data = str(new / "m" / "odd.py"), str(new / "data" / "ok.csv")
    recorded = str(new.parent.parent / "a" / "data" / "ok.csv")
    line = error_line("export", str(run_dir / "best.pt"), "--to", "alkaid", "--output", "fw", "--model", model)
    assert line == f"error: the source's dataset file {recorded!r} does not exist: if it was moved, pass --dataset"
    assert not Path("fw").exists()
    code, out = run("export", str(run_dir / "best.pt"), "--to", "alkaid", "--output", "fw", "--model", model,
                    "--dataset", data)  # fmt: skip
    assert code == 0, out
    check = json.loads(Path("fw/export.json").read_text())["check"]
    assert (check["dataset"], check["rows"], check["max_abs_diff"]) == (data, 80, 0.0)
    shutil.copytree(new / "data", new.parent.parent / "a" / "data")  # the recorded file back where it was
    code, out = run("export", str(run_dir / "best.pt"), "--to", "alkaid", "--output", "fw2", "--model", model)
    assert code == 0, out
    assert json.loads(Path("fw2/export.json").read_text())["check"]["dataset"] == recorded


def test_export_of_a_checkpoint_outside_a_run_dir_made_on_a_file_says_to_pass_dataset(
    moved: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint copied out of its run dir records its dataset only as 'jsc' (a csv read as JSC): offline,
    its export cannot fetch the real JSC set for the check, and the one error line ends saying to pass
    --dataset (the fetch's own advice is about 'netcarve train'); with --dataset the export is bit-exact."""
    from netcarve.data import jsc
    from netcarve.errors import DataError

    def offline(cache: Path) -> Any:
        raise DataError(jsc.HOW_TO_GET.format(reason="URLError: offline", cache=cache))

    monkeypatch.setattr(jsc, "fetch_openml_arrays", offline)
    new, run_dir = moved
    model, data = str(new / "m" / "odd.py"), str(new / "data" / "ok.csv")
    shutil.copy(run_dir / "best.pt", "best.pt")
    line = error_line("export", "best.pt", "--to", "alkaid", "--output", "fw", "--model", model)
    assert line.startswith("error: the JSC data could not be fetched (URLError: offline).")
    assert line.endswith(
        "For the export's check, pass --dataset: 'best.pt' records its dataset only as 'jsc' (a checkpoint does not "
        "record the file it was read from)"
    )
    assert not Path("fw").exists()
    code, out = run("export", "best.pt", "--to", "alkaid", "--output", "fw", "--model", model, "--dataset", data)
    assert code == 0, out
    assert json.loads(Path("fw/export.json").read_text())["check"]["max_abs_diff"] == 0


def test_export_of_a_run_whose_dataset_file_was_edited_says_so(moved: tuple[Path, Path]) -> None:
    """The run's dataset file edited in place since (here: a blank line appended): export RUN (its best.pt)
    is one line saying the file changed, with both sha256s, not a parse error of the edited file nor a check
    on other data; --dataset pointing at the original exports."""
    new, run_dir = moved
    model, data = new / "m" / "odd.py", new / "data" / "ok.csv"
    code, out = run("search", "--resume", str(run_dir), "--model", str(model), "--dataset", str(data))
    assert code == 0, out  # the study now records the moved files
    original = data.read_bytes()
    shutil.copy(data, "original.csv")
    data.write_bytes(original + b"\n")
    line = error_line("export", str(run_dir), "--to", "alkaid", "--output", "fw")
    assert line == (
        f"error: the dataset file {str(data)!r} changed since the run was made (sha256 {_sha(data)[:12]}… now, "
        f"{hashlib.sha256(original).hexdigest()[:12]}… then): restore it, or point --dataset at the original"
    )
    assert not Path("fw").exists()
    code, out = run("export", str(run_dir), "--to", "alkaid", "--output", "fw", "--dataset", "original.csv")
    assert code == 0, out


def test_a_moved_run_without_its_files_and_with_other_files(moved: tuple[Path, Path]) -> None:
    """Without --model the recorded model file is missing: one line saying so and how to fix it. Another
    file with the same callable is refused naming the option and both hashes (short)."""
    new, run_dir = moved
    recorded = str(new.parent.parent / "a" / "m" / "odd.py")
    line = error_line("export", str(run_dir), "--to", "alkaid", "--output", "fw")
    assert line.endswith(f"was made with, {recorded!r}, does not exist: if it was moved, point --model at it")
    line = error_line("search", "--resume", str(run_dir))
    assert line == (
        f"error: the model file the run was made with, {recorded!r}, does not exist: if it was moved, point "
        "--model at it"
    )
    other = new / "m" / "other.py"
    other.write_text(USER_MODEL + "# edited\n")
    mine = _sha(new / "m" / "odd.py")
    line = error_line("search", "--resume", str(run_dir), "--model", str(other))
    assert line == (
        f"error: --model {str(other)!r} is not the model file the run was made with: its sha256 is "
        f"{_sha(other)[:12]}…, the run's {recorded!r} had {mine[:12]}…"
    )
    line = error_line("search", "--resume", str(run_dir), "--model", str(new / "m" / "odd.py"), "--dataset",
                     str(other))  # fmt: skip
    assert line.startswith(f"error: --dataset {str(other)!r} is not the dataset file the run was made with")
    line = error_line("test", f"{other}:mlp", str(new / "data" / "ok.csv"), "--load", str(run_dir / "best.pt"))
    assert line.endswith(f"not '{other}:mlp' (sha256 {_sha(other)[:12]}…)")
    assert not Path("runs").exists()  # nothing was written for the refused test


def test_model_and_dataset_options_go_with_resume(in_tmp: Path) -> None:
    line = error_line("search", "jsc-toy", "digits", "--dataset", "x.csv")
    assert line == (
        "error: --dataset points at a moved file of a run and goes with --resume; a new search takes MODEL and "
        "DATASET as arguments"
    )
    assert not (in_tmp / "runs").exists()


def _as_written_before_hashes(run_dir: Path) -> None:
    """The run dir as a netcarve from before the files were recorded wrote it: the study's config names the
    model and dataset as typed (relative), the study records no files, base.pt no model sha256."""
    import torch

    records = []
    for line in (run_dir / "study.journal").read_text().splitlines():
        record = json.loads(line)
        attrs = record.get("user_attr", {}) if record["op_code"] == 2 else {}
        if "netcarve.files" in attrs:
            continue
        if "netcarve.config" in attrs:
            attrs["netcarve.config"].update(model="m/odd.py:mlp", dataset="data/ok.csv")
        records.append(json.dumps(record))
    (run_dir / "study.journal").write_text("\n".join(records) + "\n")
    payload = torch.load(run_dir / "base.pt", weights_only=True)
    del payload["spec"]["model_sha256"]
    payload["spec"]["model"] = "m/odd.py:mlp"
    torch.save(payload, run_dir / "base.pt")


def test_a_moved_run_from_before_hashes_takes_its_moved_files_with_a_warning(moved: tuple[Path, Path]) -> None:
    """README: a run dir from before the files were recorded, moved with them, works with --model/--dataset
    (taken with a warning: nothing to check them against). Its base.pt names the model as typed; rebuilding
    a trial from it (export --trial 1: eval mode saves no trial checkpoint) and --resume load it for the moved
    file instead of refusing it for another path."""
    new, run_dir = moved
    _as_written_before_hashes(run_dir)
    assert not (run_dir / "trials" / "trial-1.pt").exists()
    model, data = str(new / "m" / "odd.py"), str(new / "data" / "ok.csv")
    code, out = run("export", str(run_dir), "--to", "alkaid", "--output", "fw", "--trial", "1", "--model", model,
                    "--dataset", data)  # fmt: skip
    assert code == 0, out
    assert "records no hash of its model file" in out
    assert json.loads(Path("fw/export.json").read_text())["check"]["max_abs_diff"] == 0
    code, out = run("search", "--resume", str(run_dir), "--model", model, "--dataset", data)
    assert code == 0, out
    code, out = run("search", "--resume", str(run_dir))  # the study now records the moved files
    assert code == 0, out
