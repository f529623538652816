"""Reports of search runs: a self-contained HTML page with inline SVG plots (``netcarve report``)."""

from netcarve.report.load import ReportError, RunData, load_run
from netcarve.report.page import REPORT_NAME, render_report, write_report

__all__ = ["REPORT_NAME", "ReportError", "RunData", "load_run", "render_report", "write_report"]
