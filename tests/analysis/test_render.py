"""The output formats of ``netcarve analyze``: one registry, each renderer consistent with the records."""

from __future__ import annotations

import csv
import io
import json

from rich.console import Console

from netcarve.analysis import Report, analyze
from netcarve.analysis.render import RENDERERS
from netcarve.data.jsc_schema import jsc_info
from netcarve.models import create_model


def _report() -> Report:
    return analyze(create_model("jsc-tiny", jsc_info("synthetic-jsc")), (1, 16))


def test_formats_are_table_json_csv() -> None:
    assert RENDERERS.names() == ["table", "json", "csv"]


def test_json_and_csv_carry_the_same_totals_as_the_report() -> None:
    report = _report()
    text, table = RENDERERS.get("json")(report, ""), RENDERERS.get("csv")(report, "")
    assert isinstance(text, str) and isinstance(table, str)
    assert json.loads(text) == json.loads(json.dumps(report.to_dict()))
    rows = list(csv.DictReader(io.StringIO(table)))
    assert [r["name"] for r in rows] == [*(layer.name for layer in report.layers), "total"]
    assert int(rows[-1]["macs"]) == report.total.macs and int(rows[-1]["params"]) == report.total.params


def test_table_has_a_row_per_layer_and_the_summary() -> None:
    report = _report()
    buffer = io.StringIO()
    Console(file=buffer, width=200, no_color=True).print(RENDERERS.get("table")(report, "jsc-tiny"))
    text = buffer.getvalue()
    assert all(layer.name in text for layer in report.layers)
    assert f"{report.total.macs:,}" in text and f"model_size: {report.total.model_size:,} bytes" in text
