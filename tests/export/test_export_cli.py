"""``netcarve export`` end to end: a transformed checkpoint and a search run dir to alkaid, the check, and
every bad input as one error line."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from netcarve.cli.app import app
from netcarve.export.backends import Backend
from tests.e2e.cli import CONFIGS, _runner, run, run_error

pytest.importorskip("alkaid")

#: hls4ml-jet with every Linear and ReLU on 8-bit inputs, 6-bit weights (frac 4), 8-bit biases
FIXED = """
model = "hls4ml-jet"
dataset = "synthetic-jsc:2000"

[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "integer"
data_in_width = 8
data_in_frac_width = 4
weight_width = 6
weight_frac_width = 4
bias_width = 8
bias_frac_width = 4
"""

#: only seq_blocks_2 is quantized: the other three Linear layers stay float
PARTIAL = """
model = "hls4ml-jet"
dataset = "synthetic-jsc:2000"

[passes.quantize]
by = "name"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.seq_blocks_2.config]
name = "integer"
data_in_width = 8
weight_width = 6
bias_width = 8
"""

#: digits-cnn with every conv, linear and ReLU fixed point (8 bits); its BatchNorm2d stays float and is folded
CNN = """
model = "digits-cnn"
dataset = "digits"

[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "integer"
data_in_width = 8
weight_width = 8
bias_width = 8
"""

#: jsc-toy (its BatchNorms 3, 6, 9 follow Linears 2, 5, 8) with every Linear and ReLU fixed point; the
#: BatchNorms stay float and are folded on export
TOY = FIXED.replace('model = "hls4ml-jet"', 'model = "jsc-toy"')

#: the same, folded before quantization (as the README advises before quantization-aware training)
TOY_FOLDED = TOY.replace("[passes.quantize]", "[passes.fold_batchnorm]\n\n[passes.quantize]", 1)

DATA = ("--dataset", "synthetic-jsc:2000")


def save_float_toy(path: Path) -> None:
    """A float jsc-toy checkpoint whose BatchNorms have random γ, β and running statistics of the
    synthetic-jsc:2000 train split (20 train-mode passes), so that folding them changes the weights."""
    import torch

    from netcarve.data import load_dataset
    from netcarve.train.checkpoint import build_graph, save_checkpoint
    from tests.transforms.helpers import settled

    splits = load_dataset("synthetic-jsc:2000")
    torch.manual_seed(0)
    graph = build_graph("jsc-toy", splits.info)
    settled(graph.module, seed=0, passes=0)  # random γ, β
    graph.module.train()
    with torch.no_grad():
        for _ in range(20):
            graph.module(splits.split("train").x)
    graph.module.eval()
    save_checkpoint(path, graph)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory with transformed checkpoints: fixed.pt, partial.pt, cnn.pt, and toy.pt and toy-folded.pt
    (from the float toy-float.pt)."""
    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("COLUMNS", "200")
        for name, text in (("fixed", FIXED), ("partial", PARTIAL), ("cnn", CNN)):
            (root / f"{name}.toml").write_text(text)
            code, out = run("transform", "--config", f"{name}.toml", "--output", f"{name}.pt")
            assert code == 0, out
        save_float_toy(root / "toy-float.pt")
        for name, text in (("toy", TOY), ("toy-folded", TOY_FOLDED)):
            (root / f"{name}.toml").write_text(text)
            code, out = run("transform", "--config", f"{name}.toml", "--load", "toy-float.pt", "--output", f"{name}.pt")
            assert code == 0, out
        yield root


def test_checkpoint_export_is_bit_exact(work: Path) -> None:
    """The check on synthetic-jsc:2000's test split (400 rows): 0 difference, 100 % argmax agreement; export.json
    holds it with the port format, the precisions and the files; the Verilog sources are there."""
    code, out = run("export", "fixed.pt", "--to", "alkaid", "--output", "fw", *DATA)
    assert code == 0, out
    assert "max |alkaid − netcarve| = 0, argmax agreement 100.00 % (bit-exact)" in out
    summary = json.loads((work / "fw" / "export.json").read_text())
    assert summary["check"]["rows"] == 400 and summary["check"]["max_abs_diff"] == 0.0
    assert summary["check"]["argmax_agreement"] == 1.0
    assert summary["port"]["format"] == "fixed<8,4>" and "first input quantizer" in summary["port"]["note"]
    assert summary["precisions"]["seq_blocks_0"]["weight"] == "fixed<6,2>"
    assert summary["files"] == {"logic": "logic.json", "verilog": "verilog"}
    assert summary["figures"]["cost"] > 0 and len(summary["figures"]["latency_ns"]) == 2
    assert summary["backend"] == "alkaid" and "backend_given" not in summary and summary["simulation"] is None
    assert list((work / "fw" / "verilog" / "src").glob("*.v"))


def test_da4ml_is_an_alias_that_says_it_runs_alkaid(work: Path) -> None:
    """``--to da4ml`` (the backend before alkaid) still exports, through alkaid: the same files as ``--to
    alkaid``, bit-exact, a note that it now runs alkaid, and export.json naming both the backend that ran
    and the name given."""
    code, out = run("export", "fixed.pt", "--to", "da4ml", "--output", "fw-alias", *DATA)
    assert code == 0, out
    assert "max |alkaid − netcarve| = 0" in out and "note: --to da4ml now runs alkaid" in out
    summary = json.loads((work / "fw-alias" / "export.json").read_text())
    assert (summary["backend"], summary["backend_given"]) == ("alkaid", "da4ml")
    assert any("write --to alkaid" in note for note in summary["notes"])
    assert summary["files"] == {"logic": "logic.json", "verilog": "verilog"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--to", "alkaid", "--flavor", "systemc"), "--flavor 'systemc' is not one of verilog, vhdl, vitis"),
        (("--to", "hls4ml", "--flavor", "vhdl"), "--flavor chooses the code alkaid generates"),
    ],
)
def test_a_flavor_alkaid_does_not_write_is_refused_before_anything_is_written(
    work: Path, args: tuple[str, ...], message: str
) -> None:
    line = run_error("export", "fixed.pt", *args, "--output", "fw-flavor", *DATA)
    assert message in line and not (work / "fw-flavor").exists()


def test_batchnorm_model_exports_folded(work: Path) -> None:
    """jsc-toy's BatchNorms 3, 6 and 9 are folded into Linears 2, 5 and 8: the firmware equals the folded,
    requantized model bit for bit (0, 100 %), and its agreement with the unfolded model is measured and
    reported on the same 400 rows, printed and in export.json. Folded before quantization (toy-folded.pt),
    nothing is left to fold: the firmware equals the model as trained."""
    code, out = run("export", "toy.pt", "--to", "alkaid", "--output", "fw-toy", *DATA)
    assert code == 0, out
    assert "max |alkaid − netcarve| = 0, argmax agreement 100.00 % (bit-exact)" in out
    assert (
        "folded BatchNorm seq_blocks_3 into seq_blocks_2, seq_blocks_6 into seq_blocks_5, seq_blocks_9 into "
        "seq_blocks_8 (weights requantized to their formats); alkaid vs unfolded model: max |diff| = "
    ) in " ".join(out.split())
    summary = json.loads((work / "fw-toy" / "export.json").read_text())
    assert summary["check"]["max_abs_diff"] == 0.0 and summary["check"]["argmax_agreement"] == 1.0
    assert "folded" in summary["check"]["compared_with"]
    folded = summary["folded"]
    assert [(f["batch_norm"], f["into"]) for f in folded["batch_norms"]] == [
        ("seq_blocks_3", "seq_blocks_2"), ("seq_blocks_6", "seq_blocks_5"), ("seq_blocks_9", "seq_blocks_8"),
    ]  # fmt: skip
    vs = folded["vs_unfolded"]
    assert vs["max_abs_diff"] > 0 and 0.5 <= vs["argmax_agreement"] <= 1.0
    assert f"argmax agreement {100 * vs['argmax_agreement']:.2f} %" in out.split("unfolded model")[1]
    assert summary["precisions"]["seq_blocks_2"]["weight"] == "fixed<6,2>"
    assert "seq_blocks_3" not in summary["precisions"]
    code, out = run("export", "toy-folded.pt", "--to", "alkaid", "--output", "fw-toy-folded", *DATA)
    assert code == 0, out
    assert "(bit-exact)" in out and "folded BatchNorm" not in out
    assert json.loads((work / "fw-toy-folded" / "export.json").read_text())["folded"] is None


def test_existing_output_is_refused_and_force_replaces_only_a_previous_export(work: Path) -> None:
    """--force replaces a directory holding a previous export and nothing else: a folder netcarve did not
    write, an export beside which the user put a file, a symbolic link to an export, an export.json that does
    not list its files, the current directory: each is one error line and every file in it is intact."""
    (work / "fw2").mkdir()
    (work / "fw2" / "thesis.tex").write_text("mine")
    (work / "keep.txt").write_text("keep")
    assert "already exists" in run_error("export", "fixed.pt", "--to", "alkaid", "--output", "fw2", *DATA)
    line = run_error("export", "fixed.pt", "--to", "alkaid", "--output", "fw2", "--force", *DATA)
    assert "--force replaces only a previous export" in line and "'fw2' is not one: nothing was removed" in line
    assert (work / "fw2" / "thesis.tex").read_text() == "mine"

    code, out = run("export", "fixed.pt", "--to", "alkaid", "--output", "fw3", *DATA)
    assert code == 0, out
    written = json.loads((work / "fw3" / "export.json").read_text())["written"]
    assert "logic.json" in written and "export.json" not in written
    assert sorted([*written, "export.json"]) == sorted(
        p.relative_to(work / "fw3").as_posix() for p in (work / "fw3").rglob("*") if p.is_file()
    )
    (work / "fw3" / "logic.json").write_text("stale")
    code, out = run("export", "fixed.pt", "--to", "alkaid", "--output", "fw3", "--force", *DATA)
    assert code == 0, out  # a previous export is replaced
    assert (work / "fw3" / "logic.json").read_text() != "stale"

    (work / "fw3" / "verilog" / "notes.txt").write_text("mine")
    before = sorted(p for p in (work / "fw3").rglob("*"))
    line = run_error("export", "fixed.pt", "--to", "alkaid", "--output", "fw3", "--force", *DATA)
    assert "also holds 'verilog/notes.txt', which it did not write; nothing was removed" in line
    assert sorted(p for p in (work / "fw3").rglob("*")) == before
    (work / "fw3" / "verilog" / "notes.txt").unlink()

    (work / "link").symlink_to("fw3", target_is_directory=True)
    line = run_error("export", "fixed.pt", "--to", "alkaid", "--output", "link", "--force", *DATA)
    assert "--output 'link' is a symbolic link (to 'fw3')" in line
    assert (work / "link").is_symlink() and (work / "fw3" / "logic.json").is_file()

    summary = json.loads((work / "fw3" / "export.json").read_text())
    del summary["written"]
    (work / "fw3" / "export.json").write_text(json.dumps(summary))
    line = run_error("export", "fixed.pt", "--to", "alkaid", "--output", "fw3", "--force", *DATA)
    assert "does not list the files it wrote" in line and (work / "fw3" / "logic.json").is_file()

    assert (work / "keep.txt").read_text() == "keep" and (work / "fixed.pt").is_file()
    assert "holds the source" in run_error("export", "fixed.pt", "--to", "alkaid", "--output", ".", "--force")


def test_bad_input_is_one_line(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = run_error("export", "partial.pt", "--to", "alkaid", "--output", "o1", *DATA)
    assert "seq_blocks_0, seq_blocks_4, seq_blocks_6 are not fixed-point" in line
    assert "did you mean 'alkaid'" in run_error("export", "fixed.pt", "--to", "alkai", "--output", "o3")
    line = run_error(
        "export", "partial.pt", "--to", "alkaid", "--output", "o7", "--default-precision", "ap_fixed<16,6>"
    )
    assert "--default-precision is for backends that allow float layers" in line
    assert "is a checkpoint" in run_error("export", "fixed.pt", "--to", "alkaid", "--output", "o4", "--trial", "1")
    assert "does not exist" in run_error("export", "missing.pt", "--to", "alkaid", "--output", "o5")
    line = run_error("export", "fixed.pt", "--to", "alkaid", "--output", "fixed.pt/o8")
    assert line == "error: --output 'fixed.pt/o8' cannot be written: 'fixed.pt' is a file, not a directory"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "alkaid" else real(name, *a))
    line = run_error("export", "fixed.pt", "--to", "alkaid", "--output", "o6")
    assert "needs the 'alkaid' package: pip install 'netcarve[fpga]'" in line
    assert not any((work / f"o{i}").exists() for i in range(1, 8))  # nothing written on bad input


def test_an_export_that_is_not_bit_exact_fails_and_keeps_its_files(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fully fixed-point model whose firmware differs from netcarve (here: a backend off by one step of
    1/16 on one output of one row, the size of the collapsed-candidate defect) is exit code 1 with one
    error line saying by how much; the written files are kept, and export.json records the failed check."""
    from netcarve.export import api

    real = api.backend_named

    def off_by_a_step(name: str) -> Backend:
        backend = real(name)

        def write(program: Any, directory: Path, options: Any) -> Any:
            result = backend.write(program, directory, options)

            def predict(x: np.ndarray) -> np.ndarray:
                out = np.array(result.predict(x), dtype=np.float64)
                out[0, 0] += 0.0625
                return out

            return dataclasses.replace(result, predict=predict)

        return dataclasses.replace(backend, write=write)

    monkeypatch.setattr(api, "backend_named", off_by_a_step)
    result = _runner.invoke(app, ["export", "fixed.pt", "--to", "alkaid", "--output", "fw-off", *DATA])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert lines == [
        "error: the alkaid firmware is not bit-exact: max |alkaid − netcarve| = 0.0625 on test (400 rows, argmax "
        "agreement 100.00 %), for a fully fixed-point model that must match exactly; its files are kept in "
        "'fw-off' for inspection (export.json has the check)"
    ]
    summary = json.loads((work / "fw-off" / "export.json").read_text())
    assert summary["check"]["max_abs_diff"] == 0.0625 and summary["check"]["bit_exact"] is False
    assert (work / "fw-off" / "logic.json").is_file()
    with pytest.raises(api.NotBitExactError) as err:
        api.export(work / "fixed.pt", "alkaid", work / "fw-off2", split="val")
    assert err.value.outcome.max_abs_diff == 0.0625 and not err.value.outcome.exact


def test_search_run_dir_best_and_trial(work: Path) -> None:
    """A two-trial demo search (one epoch each): its best trial and a complete trial export bit-exactly; a
    trial that does not exist, or that failed, is one error line."""
    args = ["search", "--config", str(CONFIGS / "demo_search_digits.toml"), "--project", "s", "--n-trials", "2",
            "--set", "search.strategy.sw_runner.basic_train.max_epochs=1",
            "--set", "search.constraints.accuracy.min=0"]  # one epoch is not enough for 90 %  # fmt: skip
    code, out = run(*args)
    assert code == 0, out
    run_dir = work / "runs" / "s" / "latest"
    code, out = run("export", str(run_dir), "--to", "alkaid", "--output", "best")
    assert code == 0, out
    assert "= 0, argmax agreement 100.00 %" in out
    with (run_dir / "trials.csv").open() as fh:
        numbers = [int(r["number"]) for r in csv.DictReader(fh) if r["state"] == "COMPLETE"]
    code, out = run("export", str(run_dir), "--to", "alkaid", "--output", "t", "--trial", str(numbers[-1]))
    assert code == 0, out
    summary = json.loads((work / "t" / "export.json").read_text())
    assert summary["trial"] == numbers[-1] and summary["check"]["max_abs_diff"] == 0.0
    assert run_dir.is_symlink()  # runs/s/latest: the run dir it points to is recorded
    assert summary["source"] == str(run_dir.resolve()) and summary["source_given"] == str(run_dir)
    assert summary["check"]["rows"] == 360 and np.isclose(summary["check"]["argmax_agreement"], 1.0)
    line = run_error("export", str(run_dir), "--to", "alkaid", "--output", "t2", "--trial", "99")
    assert "trial 99 does not exist" in line
    import optuna
    from optuna.trial import TrialState, create_trial

    from netcarve.search import storage as st
    from netcarve.search.api import read_study_ref

    ref = read_study_ref(run_dir, None)
    study = optuna.load_study(study_name=ref.name, storage=st.open_storage(ref.storage))
    study.add_trial(create_trial(state=TrialState.FAIL))
    failed = max(t.number for t in study.get_trials(deepcopy=False))
    line = run_error("export", str(run_dir), "--to", "alkaid", "--output", "t3", "--trial", str(failed))
    assert f"trial {failed} is failed, not complete" in line


def test_cnn_exports_to_alkaid_bit_exact(work: Path) -> None:
    """digits-cnn (8 bits throughout, its BatchNorm2d folded into the first conv) on the digits test split
    (360 rows): the alkaid firmware equals netcarve's forward of the folded model bit for bit."""
    code, out = run("export", "cnn.pt", "--to", "alkaid", "--output", "fw-cnn")
    assert code == 0, out
    assert "max |alkaid − netcarve| = 0, argmax agreement 100.00 % (bit-exact)" in out
    assert "folded BatchNorm seq_blocks_2 into seq_blocks_1" in " ".join(out.split())
    summary = json.loads((work / "fw-cnn" / "export.json").read_text())
    assert summary["check"]["rows"] == 360 and summary["check"]["max_abs_diff"] == 0.0
    assert summary["port"]["in_features"] == 64 and summary["port"]["out_features"] == 10


def test_cnn_to_hls4ml_is_one_line(work: Path) -> None:
    """hls4ml maps MLPs only: exporting digits-cnn to it names the first conv, points to alkaid, and writes
    nothing."""
    pytest.importorskip("hls4ml")
    line = run_error("export", "cnn.pt", "--to", "hls4ml", "--output", "fw-cnn-hls")
    assert "node 'seq_blocks_1' (conv2d): the hls4ml export maps MLPs only" in line and "--to alkaid" in line
    assert not (work / "fw-cnn-hls").exists()


def test_part_is_spelt_like_a_part_and_said_to_be_unchecked(work: Path) -> None:
    """hls4ml has no list of FPGA parts: --part is checked for its spelling only (it goes into the project's
    Tcl scripts), and the export says, printed and in export.json, that the part itself is not checked.
    alkaid's firmware takes no part: --part with it is refused. Refusals write nothing."""
    pytest.importorskip("hls4ml")
    line = run_error("export", "fixed.pt", "--to", "hls4ml", "--output", "p1", "--part", "xcvu9p; exec rm x", *DATA)
    assert line.startswith("error: --part 'xcvu9p; exec rm x' is not an FPGA part name: letters, digits")
    line = run_error("export", "fixed.pt", "--to", "alkaid", "--output", "p2", "--part", "xcvu9p-flga2104-2-e", *DATA)
    assert line == (
        "error: --part is for backends that target an FPGA part (hls4ml); alkaid's firmware does not depend on one"
    )
    assert not (work / "p1").exists() and not (work / "p2").exists()
    if shutil.which("g++") is None:
        pytest.skip("hls4ml's C simulation needs g++")
    code, out = run("export", "fixed.pt", "--to", "hls4ml", "--output", "p3", "--part", "nonsense", *DATA)
    assert code == 0, out
    note = "part nonsense: not checked against the parts that exist (hls4ml has no list of them)"
    assert f"note: {note}" in " ".join(out.split())
    summary = json.loads((work / "p3" / "export.json").read_text())
    assert summary["figures"]["part"] == "nonsense" and summary["notes"][0].startswith(note)
    assert summary["check"]["max_abs_diff"] == 0.0


def test_a_failed_export_lists_what_it_wrote_and_force_replaces_it(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend that fails half-way (here after writing partial.v): one error line, and an export.json that
    lists partial.v, so that the next export with --force may replace the directory."""
    import dataclasses

    from netcarve.export import api

    real = api.backend_named

    def failing(program: object, directory: Path, options: object) -> None:
        (directory / "partial.v").write_text("module")
        raise RuntimeError("boom")

    monkeypatch.setattr(api, "backend_named", lambda name: dataclasses.replace(real(name), write=failing))
    line = run_error("export", "fixed.pt", "--to", "alkaid", "--output", "failed", *DATA)
    assert line == "error: alkaid failed: RuntimeError: boom"
    summary = json.loads((work / "failed" / "export.json").read_text())
    assert summary["written"] == ["partial.v"] and summary["failed"] == "alkaid failed: RuntimeError: boom"
    monkeypatch.undo()
    code, out = run("export", "fixed.pt", "--to", "alkaid", "--output", "failed", "--force", *DATA)
    assert code == 0, out
    assert not (work / "failed" / "partial.v").exists() and (work / "failed" / "logic.json").is_file()


def test_an_interrupted_export_lists_what_it_wrote(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the backend (e.g. a long --simulate build) propagates, and the export.json left behind
    lists what was written and says "interrupted", so that --force may replace the directory afterwards."""
    import dataclasses

    from netcarve.export import api

    real = api.backend_named

    def interrupted(program: object, directory: Path, options: object) -> None:
        (directory / "half.v").write_text("module")
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "backend_named", lambda name: dataclasses.replace(real(name), write=interrupted))
    with pytest.raises(KeyboardInterrupt):
        api.export(work / "fixed.pt", "alkaid", work / "stopped", split="test", dataset="synthetic-jsc:2000")
    summary = json.loads((work / "stopped" / "export.json").read_text())
    assert summary["written"] == ["half.v"] and summary["failed"] == "interrupted"
