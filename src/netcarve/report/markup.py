"""HTML building blocks shared by report.html and compare.html: escaping, numbers, tables, the page shell.

Every string from a run (names, params, messages, the command line, the config) goes through :func:`esc`;
the pages contain no script and load nothing from the network.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from netcarve.errors import NetcarveError
from netcarve.paths import output_file, write_atomically

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1180px;
padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#555}code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#f6f6f6;padding:10px;overflow:auto}details summary{cursor:pointer;color:#444}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;padding:3px 7px;vertical-align:top}
th{background:#f2f2f2;text-align:left;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.pareto td{background:#fff5e0}tr.PRUNED td,tr.FAIL td{color:#888}.scroll{overflow:auto;max-height:640px}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dl.summary dt{color:#555}
dl.summary dd{margin:0}figure{margin:8px 0}figcaption{color:#555;font-size:12px;max-width:720px}
svg.plot{background:#fff;max-width:100%;height:auto}
svg .grid{stroke:#eee}svg .tick{stroke:#888}svg .frame{fill:none;stroke:#888}
svg text{font:11px system-ui,sans-serif;fill:#333}svg .axis-label{font-size:12px;fill:#222}
svg .legend{font-size:11px}
svg .trial{fill:#9aa6b2;stroke:#fff;stroke-width:1}svg .trial.pareto{fill:#e8710a;stroke:#7a3a00}
svg .trial.infeasible,svg .hist.infeasible{fill:none;stroke:#c0392b}svg .trial.reused,svg .hist.reused{opacity:.55}
svg .front-line{fill:none;stroke:#e8710a;stroke-width:1.5;stroke-dasharray:4 3}
svg .hist{fill:#4a78c2;stroke:#fff;stroke-width:.8}svg .best-line{fill:none;stroke:#d62728;stroke-width:2}
svg .mark{fill:none;stroke-width:1.6}svg .mark.pruned{stroke:#e6a100}svg .mark.failed{stroke:#c0392b}
svg rect.swatch.best-line{fill:#d62728}svg rect.swatch.front-line{fill:#e8710a}
svg rect.swatch.mark.pruned{fill:#e6a100}svg rect.swatch.mark.failed{fill:#c0392b}
svg .band{stroke:none;opacity:.18}svg .mean{fill:none;stroke-width:2}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any) -> str:
    """Integers without a decimal point; other floats with 4 significant digits; anything else as text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


#: the significant digits of a column's largest value when the column is shown with decimals
COLUMN_DIGITS = 4


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def column_format(values: Iterable[Any]) -> Callable[[Any], str]:
    """One format for every number of a table column, so that its cells line up and read alike (a column
    never mixes ``6144``, ``1.552e+04`` and ``14221``):

    - every value a whole number (below 1e15): integers, ``6144``, ``15520``;
    - else, the largest magnitude from 1e-3 to below 1e6: fixed decimals giving it COLUMN_DIGITS significant
      digits (``0.8571``, ``12.50``; ``15524`` with none);
    - else scientific with 3 decimals for all (``1.235e+07``).

    Anything else (text, NaN, ±inf, a bool) is shown as text."""
    numbers = [float(v) for v in values if _finite(v)]
    if all(v.is_integer() and abs(v) < 1e15 for v in numbers):
        spec = "int"
    else:
        largest = max(abs(v) for v in numbers)
        if 1e-3 <= largest < 1e6:
            spec = f".{max(0, COLUMN_DIGITS - 1 - math.floor(math.log10(largest)))}f"
        else:
            spec = f".{COLUMN_DIGITS - 1}e"

    def fmt(value: Any) -> str:
        if not _finite(value):
            return str(value)
        return str(int(value)) if spec == "int" else format(float(value), spec)

    return fmt


def rounded(values: Mapping[str, Any]) -> str:
    """MASE's "Best trial(s)" cells: name = value rounded to 3 digits, one per line."""
    parts = [f"{k} = {round(v, 3) if isinstance(v, float) else v}" for k, v in values.items()]
    return "<br>".join(esc(p) for p in parts)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], row_classes: Sequence[str] = (), *,
          numeric: Sequence[bool] = (), cls: str = "") -> str:  # fmt: skip
    """A table from already-escaped cells (headers are escaped here)."""
    th = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = []
    for i, row in enumerate(rows):
        rc = f' class="{esc(row_classes[i])}"' if i < len(row_classes) and row_classes[i] else ""
        tds = "".join(
            f'<td class="num">{c}</td>' if j < len(numeric) and numeric[j] else f"<td>{c}</td>"
            for j, c in enumerate(row)
        )
        body.append(f"<tr{rc}>{tds}</tr>")
    klass = f' class="{esc(cls)}"' if cls else ""
    return f"<table{klass}><thead><tr>{th}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"


def figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"


def page(title: str, body: Sequence[str], extra_css: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}{extra_css}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_new(path: Any, text: str, force: bool, error: type[NetcarveError]) -> None:
    """Write ``text`` to ``path``; an existing file is kept unless ``force`` (then ``error`` is raised)."""
    from pathlib import Path

    target = Path(path)
    if target.is_dir():
        raise error(f"{str(target)!r} is a directory; give the path of a file to write")
    output_file(target, "output", error)  # not through a file (afile/x.html)
    if target.exists() and not force:
        raise error(f"{target} exists; pass --force to overwrite it")
    try:
        write_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot write {target}: {exc.strerror or exc}") from exc
