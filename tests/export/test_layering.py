"""The export sits below the search: no module of ``netcarve.export`` imports ``netcarve.search``, also inside
a function; a search run dir reaches it through the ``run_reader`` its caller passes (the CLI's is
``netcarve.search.lookup.run_model``)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import netcarve.export
from netcarve.errors import ExportError


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_export_module_imports_the_search() -> None:
    package = Path(netcarve.export.__file__).parent
    files = sorted(package.glob("*.py"))
    assert len(files) >= 5  # api, backends, program, alkaid, hls4ml
    bad = {f.name: m for f in files for m in _imports(f) if m == "netcarve.search" or m.startswith("netcarve.search.")}
    assert not bad, bad


def test_a_run_dir_without_a_reader_is_a_clear_error(tmp_path: Path) -> None:
    from netcarve.export.api import load_source

    (tmp_path / "manifest.json").write_text(json.dumps({"study": {"storage": "x", "name": "y"}}))
    with pytest.raises(ExportError, match=r"is a search run dir: pass run_reader=netcarve\.search\.lookup\.run_model"):
        load_source(tmp_path, None)
    calls: list[tuple[Path, int | None]] = []

    def reader(run_dir: Path, trial: int | None) -> tuple[object, str | None]:
        calls.append((run_dir, trial))
        return "graph", "digits"

    assert load_source(tmp_path, 3, reader) == ("graph", "digits")  # type: ignore[arg-type]
    assert calls == [(tmp_path, 3)]
