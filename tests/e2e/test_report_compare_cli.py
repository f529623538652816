"""``netcarve report`` and ``netcarve compare`` end to end on the embedded digits set."""

from __future__ import annotations

import csv
import itertools
import json
import math
import statistics
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.e2e.cli import CONFIGS, run, run_error

#: the shipped compare config shrunk to 2 × 2 × 1 = 4 configurations (seq_blocks_2, seq_blocks_5 ∈ {2, 8} bits)
TINY = [
    "--set", "search.search_space.seed.seq_blocks_2.config.weight_width=[2, 8]",
    "--set", "search.search_space.seed.seq_blocks_5.config.weight_width=[2, 8]",
    "--set", "search.search_space.seed.seq_blocks_8.config.weight_width=[8]",
    "--set", "max_epochs=4",
]  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-report")


@pytest.fixture
def in_workdir(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workdir)
    return workdir


@pytest.fixture(scope="module")
def search_dir(workdir: Path) -> Path:
    project_dir = f'project_dir="{workdir / "runs"}"'
    code, out = run("search", "--config", str(CONFIGS / "search_joint_digits.toml"), "--project", "s",
                    "--n-trials", "4", "--set", project_dir)  # fmt: skip
    assert code == 0, out
    return (workdir / "runs" / "s" / "latest").resolve()


def test_search_writes_report_and_report_refuses_to_overwrite(search_dir: Path, in_workdir: Path) -> None:
    assert (search_dir / "report.html").is_file()
    code, out = run("report", str(search_dir))
    assert code == 2 and "report.html exists; pass --force to overwrite it" in out
    assert len(out.strip().splitlines()) == 1
    code, out = run("report", str(search_dir), "--force")
    assert code == 0 and "report:" in out
    code, out = run("report", str(search_dir), "--output", "other.html")
    assert code == 0 and (in_workdir / "other.html").read_text().startswith("<!DOCTYPE html>")
    code, out = run("report", str(search_dir), "--output", "missing/dir/r.html")
    assert code == 2 and "cannot write missing/dir/r.html" in out
    line = run_error("report", str(search_dir), "--output", "other.html/r.html")
    assert line == "error: output 'other.html/r.html' cannot be written: 'other.html' is a file, not a directory"


def test_report_of_a_non_search_dir_is_one_line_exit_2(in_workdir: Path) -> None:
    (in_workdir / "train-run").mkdir(exist_ok=True)
    (in_workdir / "train-run" / "manifest.json").write_text("{}")
    code, out = run("report", "train-run")
    assert code == 2
    assert out.strip() == "error: 'train-run' is not a search run dir: trials.csv is missing"


def test_compare_unknown_sampler_suggests_and_writes_nothing(in_workdir: Path) -> None:
    code, out = run("compare", "--config", str(CONFIGS / "compare_quantize_digits.toml"), "--samplers", "tpe,rnadom",
                    "--project", "bad")  # fmt: skip
    assert code == 2 and "unknown sampler 'rnadom'; did you mean 'random'?" in out
    assert not (in_workdir / "runs" / "bad").exists()


def test_compare_without_a_search_space_fails_before_writing(in_workdir: Path) -> None:
    code, out = run("compare", "jsc-tiny", "digits", "--samplers", "random", "--project", "nospace")
    assert code == 2 and "no [search.search_space] in the config" in out
    assert not (in_workdir / "runs" / "nospace").exists()


@pytest.fixture(scope="module")
def compare_dir(workdir: Path) -> tuple[Path, str]:
    """random and brute_force, seeds 0 and 1, 4 trials each over the 4-configuration space (two objectives)."""
    project_dir = f'project_dir="{workdir / "runs"}"'
    config = str(CONFIGS / "compare_quantize_digits.toml")
    code, out = run("compare", "--config", config, *TINY, "--set", project_dir, "--samplers", "random,brute-force",
                    "--seeds", "0,1", "--n-trials", "4", "--project", "cmp")  # fmt: skip
    assert code == 0, out
    return (workdir / "runs" / "cmp" / "latest").resolve(), out


def curves(root: Path) -> dict[tuple[str, int], list[float]]:
    out: dict[tuple[str, int], list[float]] = defaultdict(list)
    with (root / "compare.csv").open() as fh:
        for row in csv.DictReader(fh):
            assert int(row["trial"]) == len(out[row["sampler"], int(row["seed"])]) + 1
            out[row["sampler"], int(row["seed"])].append(float(row["best_so_far"]))
    return out


def test_compare_writes_one_row_per_trial_and_monotone_curves(compare_dir: tuple[Path, str]) -> None:
    root, out = compare_dir
    found = curves(root)
    assert sorted(found) == [("brute_force", 0), ("brute_force", 1), ("random", 0), ("random", 1)]
    assert all(len(c) == 4 for c in found.values())  # 2 samplers × 2 seeds × 4 trials
    for c in found.values():
        assert all(b >= a for a, b in itertools.pairwise(c))  # hypervolume never decreases
    table = out[out.index("hypervolume after k trials") :]
    assert "random" in table and "brute_force" in table and "95% of" in table and "after 4" in table


def test_brute_force_over_the_whole_space_reaches_the_global_best(compare_dir: tuple[Path, str]) -> None:
    root, _ = compare_dir
    found = curves(root)
    best = max(v for c in found.values() for v in c)
    assert found["brute_force", 0][-1] == found["brute_force", 1][-1] == pytest.approx(best)
    assert json.loads((root / "compare.json").read_text())["best"] == pytest.approx(best)


def test_summary_matches_the_csv(compare_dir: tuple[Path, str]) -> None:
    """Recomputed by hand: after k = ceil(f·4) trials, mean and sample std over seeds; threshold 0.95·best
    (hypervolume ≥ 0); trials needed = first k whose value reaches it, averaged over the runs that do."""
    root, _ = compare_dir
    found = curves(root)
    data = json.loads((root / "compare.json").read_text())
    assert data["measure"] == "hypervolume" and data["objectives"] == ["accuracy", "average_bitwidth"]
    best = max(v for c in found.values() for v in c)
    limit = 0.95 * best
    assert data["threshold"] == pytest.approx(limit)
    for sampler in ("random", "brute_force"):
        runs = [found[sampler, s] for s in (0, 1)]
        summary = data["summary"][sampler]
        for label, f in (("25%", 0.25), ("50%", 0.5), ("100%", 1.0)):
            k = math.ceil(f * 4)
            values = [c[k - 1] for c in runs]
            got = summary["after"][label]
            assert got["trials"] == k and got["n"] == 2
            assert got["mean"] == pytest.approx(statistics.mean(values))
            assert got["std"] == pytest.approx(statistics.stdev(values), abs=1e-12)
        needed = [next((i + 1 for i, v in enumerate(c) if v >= limit), None) for c in runs]
        reached = [n for n in needed if n is not None]
        assert summary["reached"] == len(reached)
        assert summary["trials_to_reach"]["mean"] == (statistics.mean(reached) if reached else None)


def test_compare_run_layout_and_page(compare_dir: tuple[Path, str]) -> None:
    root, _ = compare_dir
    for name in ("config.toml", "manifest.json", "compare.csv", "compare.json", "compare.html"):
        assert (root / name).is_file(), name
    assert json.loads((root / "manifest.json").read_text())["command"] == "compare"
    for sub in ("random-seed0", "random-seed1", "brute_force-seed0", "brute_force-seed1"):
        assert (root / sub / "trials.csv").is_file() and (root / sub / "report.html").is_file()
    assert (root / "random-seed0" / "base.pt").is_file()  # the base is trained once, in the first run
    assert not (root / "random-seed1" / "base.pt").exists()
    assert "random-seed0/base.pt" in (root / "random-seed1" / "config.toml").read_text()
    text = (root / "compare.html").read_text()
    parser = HTMLParser()
    parser.feed(text)
    assert text.count('<polygon class="band') == 2 and text.count('<polyline class="mean') == 2
    assert 'href="brute_force-seed1/report.html"' in text and "<script" not in text


def test_single_objective_compare_reaches_the_best_value(workdir: Path) -> None:
    """sum_scaled_metrics: the curve is the best objective so far; brute force over all 4 configurations finds
    the best value any run found."""
    project_dir = f'project_dir="{workdir / "runs"}"'
    code, out = run("compare", "--config", str(CONFIGS / "compare_quantize_digits.toml"), *TINY, "--set", project_dir,
                    "--set", "search.strategy.setup.sum_scaled_metrics=true", "--samplers", "brute_force,random",
                    "--seeds", "3", "--n-trials", "4", "--project", "single")  # fmt: skip
    assert code == 0, out
    root = (workdir / "runs" / "single" / "latest").resolve()
    data = json.loads((root / "compare.json").read_text())
    assert data["measure"] == "best objective" and data["reference_point"] is None
    found = curves(root)
    assert found["brute_force", 3][-1] == data["best"] == max(v for c in found.values() for v in c)
