"""The report is made from the files alone: importing it loads neither the search nor torch nor Optuna."""

from __future__ import annotations

import subprocess
import sys


def test_report_does_not_import_the_search() -> None:
    code = (
        "import netcarve.report, netcarve.report.plots, sys; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'optuna') "
        "or m == 'netcarve.search' or m.startswith('netcarve.search.')); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
