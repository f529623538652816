"""The number formats of the report's tables: one format per column."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from netcarve.report import load_run, render_report
from netcarve.report.markup import column_format


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        # the column: whole numbers and one fraction. Largest 15524.5 has 5 integer digits ≥ 4: no
        # decimals for any cell (format .0f rounds half to even: 15524)
        ([6144, 15524.5, 14221.0], ["6144", "15524", "14221"]),
        ([6144, 15520.0, 14221], ["6144", "15520", "14221"]),  # all whole: integers
        # largest 0.8571: 4 significant digits = 4 decimals, for every cell
        ([0.857142, 0.5, 0.1], ["0.8571", "0.5000", "0.1000"]),
        ([12.5, 3.0, 0.25], ["12.50", "3.00", "0.25"]),  # largest 12.5: 2 decimals
        ([1.2345e7, 0.5], ["1.234e+07", "5.000e-01"]),  # largest ≥ 1e6: scientific for all
        ([1e-4, 2e-4], ["1.000e-04", "2.000e-04"]),  # largest < 1e-3: scientific
        ([0.5, float("nan"), None], ["0.5000", "nan", "None"]),  # not finite: as text, format unchanged
    ],
)
def test_one_format_per_column(values: list[object], shown: list[str]) -> None:
    fmt = column_format(values)
    assert [fmt(v) for v in values] == shown


def test_every_numeric_column_of_the_all_trials_table_has_one_format(search_run: Path) -> None:
    """In report.html of a real search, each numeric column of "All trials" is all integers, or all with the
    same number of decimals, or all scientific."""
    html = render_report(load_run(search_run))
    table = html[html.index("<h2>All trials</h2>") :]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("<tbody>", 1)[1].split("</tbody>", 1)[0])
    cells = [re.findall(r'<td class="num">([^<]*)</td>', row) for row in rows]
    assert cells and all(len(c) == len(cells[0]) for c in cells)
    for j in range(len(cells[0])):
        column = [c[j] for c in cells if c[j]]
        kinds = {"sci" if "e" in v else len(v.split(".")[1]) if "." in v else "int" for v in column}
        assert len(kinds) <= 1, (j, column)
