"""Output formats of an analysis :class:`Report`: one registry, name → renderer (``netcarve analyze --format``).

A renderer takes the report and a title and returns either plain text (written verbatim: json, csv) or a
rich renderable (printed through a rich console at the terminal's or a file's width: the table).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from rich.console import Group, RenderableType
from rich.text import Text

from netcarve.analysis.records import Report
from netcarve.analysis.table import report_table, summary_lines
from netcarve.registry import Registry

Renderer = Callable[[Report, str], "str | RenderableType"]

RENDERERS: Registry[Renderer] = Registry("output format")


@RENDERERS.register("table")
def render_table(report: Report, title: str) -> RenderableType:
    """A per-layer table with a total row, then the whole-model metrics line by line."""
    return Group(report_table(report, title), *(Text(line) for line in summary_lines(report)))


@RENDERERS.register("json")
def render_json(report: Report, title: str) -> str:
    """:meth:`Report.to_dict` as indented JSON."""
    return json.dumps(report.to_dict(), indent=2) + "\n"


@RENDERERS.register("csv")
def render_csv(report: Report, title: str) -> str:
    """:meth:`Report.to_csv`: one row per layer and a last row ``total``."""
    return report.to_csv()
