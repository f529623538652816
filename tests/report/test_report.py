"""report.html of a real search run: structure, plotted points, Pareto highlight, escaping, refusals."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from netcarve.report import ReportError, load_run, render_report, write_report
from netcarve.report.plots import pareto_axes, pareto_numbers

VOID = {"meta", "br", "img", "input", "link", "hr", "col", "wbr", "source", "area", "base"}
HOSTILE = '<script>alert("x")</script>'


class StrictParser(HTMLParser):
    """Checks that every element is closed in order, and collects the classes of circles."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.circles: list[set[str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "circle":
            self.circles.append(set((dict(attrs).get("class") or "").split()))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def parse(text: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(text)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "trials.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_the_search_wrote_the_report(search_run: Path) -> None:
    text = (search_run / "report.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and "Best trial(s)" in text
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")


def test_one_point_per_complete_trial_and_the_front_highlighted(search_run: Path) -> None:
    """The fixture run has 4 distinct complete trials, one of them dominated (see conftest), pruned and reused
    trials; the highlighted points are exactly best.json's best trials (multi-objective: the Pareto front)."""
    rows = csv_rows(search_run)
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    parser = parse((search_run / "report.html").read_text())
    trial_points = [c for c in parser.circles if "trial" in c]
    assert len(trial_points) == len(complete) >= 4
    run = load_run(search_run)
    front = pareto_numbers(run)
    best = [b["number"] for b in json.loads((search_run / "best.json").read_text())["best"]]
    assert sorted(front) == sorted(best)
    assert sum("pareto" in c for c in trial_points) == len(front)
    assert 0 < len(front) < len(complete)  # one complete trial is dominated
    assert any(r["state"] == "PRUNED" for r in rows) and any(r["reused_from"] for r in rows)


def test_history_panels_and_marks(search_run: Path) -> None:
    """One history panel per objective (accuracy, model_size), each with a point per complete trial, a
    best-so-far line and a cross per pruned trial."""
    rows = csv_rows(search_run)
    text = (search_run / "report.html").read_text()
    parser = parse(text)
    n_complete = sum(r["state"] == "COMPLETE" for r in rows)
    n_pruned = sum(r["state"] == "PRUNED" for r in rows)
    assert sum("hist" in c for c in parser.circles) == 2 * n_complete
    assert text.count('class="best-line"') == 2
    assert text.count('<path class="mark pruned"') == 2 * n_pruned
    assert parser.tags.count("svg") == 3


def test_axes_have_units_and_directions(search_run: Path) -> None:
    text = (search_run / "report.html").read_text()
    x, y = pareto_axes(load_run(search_run))
    assert (x.name, y.name) == ("model_size", "accuracy")
    assert "model_size (bytes)  ← better" in text and "accuracy (fraction)  ↑ better" in text
    assert "model_size (bytes)  ↓ better" in text  # its history panel


def test_tables_list_every_trial_and_the_best(search_run: Path) -> None:
    text = (search_run / "report.html").read_text()
    rows = csv_rows(search_run)
    for column in ("software_metrics", "hardware_metrics", "scaled_metrics"):
        assert f">{column}</th>" in text
    assert text.count('<tr class="COMPLETE') + text.count('<tr class="PRUNED') == len(rows)
    assert "param:" not in text and "seq_blocks_2/channel_multiplier" in text
    assert "model_size = " in text  # pruned reason in the notes


def test_every_user_string_is_escaped(search_run: Path, tmp_path: Path) -> None:
    """A copy of the run with a hostile model name, parameter name, parameter value and error message."""
    run_dir = tmp_path / "run"
    shutil.copytree(search_run, run_dir)
    config = (run_dir / "config.toml").read_text().replace('model = "jsc-three-linear-layers"', f"model = '{HOSTILE}'")
    (run_dir / "config.toml").write_text(config)
    rows = csv_rows(run_dir)
    rows[0]["param:seq_blocks_2/channel_multiplier"] = "<img src=x onerror=alert(1)>"
    rows[1]["pruned"] = "</td></tr></table><b>broken</b>"
    fields = [f.replace("seq_blocks_4", "<i>evil</i>") for f in rows[0]]
    with (run_dir / "trials.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        writer.writerows([list(r.values()) for r in rows])
    text = render_report(load_run(run_dir))
    parse(text)
    for raw in ("<script", "<img", "<b>broken", "<i>evil"):
        assert raw not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "&lt;i&gt;evil&lt;/i&gt;" in text


def test_existing_output_is_refused_without_force(search_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    target.write_text("mine")
    with pytest.raises(ReportError, match=r"exists; pass --force"):
        write_report(search_run, target)
    assert target.read_text() == "mine"
    assert write_report(search_run, target, force=True) == target
    assert target.read_text().startswith("<!DOCTYPE html>")


def test_a_dir_that_is_not_a_search_run_is_refused(search_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"is not a search run dir: trials\.csv is missing"):
        load_run(tmp_path)
    shutil.copy(search_run / "trials.csv", tmp_path / "trials.csv")
    with pytest.raises(ReportError, match=r"best\.json is missing"):
        load_run(tmp_path)
    with pytest.raises(ReportError, match="is not a directory"):
        load_run(tmp_path / "nope")


def test_a_failing_report_does_not_fail_the_search(
    search_run: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import netcarve.report
    from netcarve.search.api import write_report_safely

    def boom(*args: object, **kwargs: object) -> Path:
        raise RuntimeError("disk full")

    monkeypatch.setattr(netcarve.report, "write_report", boom)
    with caplog.at_level(logging.WARNING):
        assert write_report_safely(search_run) is None
    assert "could not write report.html: RuntimeError: disk full" in caplog.text


def test_fpga_latency_unit_follows_the_package_the_run_records() -> None:
    """A run records which package computed its firmware metrics (manifest ``firmware_metrics``): its
    fpga_latency axis is in that package's unit (alkaid: ns); a run from before the record has da4ml's
    values, in adder delays, and is labelled so rather than as ns. fpga_luts is LUTs either way."""
    from netcarve.report.load import DA4ML_LATENCY_UNIT, _metrics

    best = {"metrics": [{"name": "fpga_latency", "direction": "minimize"}, {"name": "fpga_luts"}]}
    alkaid = {"firmware_metrics": {"package": "alkaid", "version": "0.8.2", "latency_unit": "ns"}}
    assert [m.unit for m in _metrics(best, alkaid)] == ["ns", "LUT"]
    assert [m.unit for m in _metrics(best, {})] == [DA4ML_LATENCY_UNIT, "LUT"]
    assert DA4ML_LATENCY_UNIT == "adder delays, da4ml"
