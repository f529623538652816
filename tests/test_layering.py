"""Imports are layered (ARCHITECTURE.md, "Imports are layered"): every import statement in src/ — at module
level, inside a function or under ``TYPE_CHECKING`` — goes to the same layer or one below, never up; and the
light modules import no torch, so ``netcarve --help`` stays fast."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import netcarve

SRC = Path(__file__).resolve().parents[1] / "src"

#: The layers, top first; a module belongs to the layer of the longest prefix listed. This table is the one
#: statement of the layering (ARCHITECTURE.md describes it).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cli", ("netcarve.cli",)),
    (
        "runners",  # one per command, and the steps they share
        (
            "netcarve.train.api",
            "netcarve.transforms.api",
            "netcarve.search.api",  # a facade over the search runner's steps below, which load data and models
            "netcarve.search.start",
            "netcarve.search.resume",
            "netcarve.search.worker",
            "netcarve.search.lookup",
            "netcarve.search.finish",
            "netcarve.compare",  # compare/run.py runs a search per sampler and seed, through search/
            "netcarve.workflow",
            "netcarve.configure",
            "netcarve.catalog",
        ),
    ),
    ("search", ("netcarve.search",)),
    (
        "results",  # what a run's files hold and how they are shown: no search, no torch
        (
            "netcarve.report",
            "netcarve.compare.curves",
            "netcarve.compare.output",
            "netcarve.compare.page",
            "netcarve.metrics",
        ),
    ),
    ("analysis", ("netcarve.analysis",)),  # analysis/fpga.py estimates firmware through export/
    ("export", ("netcarve.export",)),  # export/api.py included: it needs no runner once it finds trials itself
    ("transforms", ("netcarve.transforms",)),
    (
        "ir/train/data/models",
        ("netcarve.ir", "netcarve.train", "netcarve.data", "netcarve.models", "netcarve.provenance"),
    ),
    (
        "config/base",
        (
            "netcarve",  # the package: __version__ (its lazy names are resolved below)
            "netcarve.config",
            "netcarve.registry",
            "netcarve.errors",
            "netcarve.paths",
            "netcarve.redact",
            "netcarve.outcomes",
            "netcarve.device",
            "netcarve.runs",
            "netcarve.optuna_internals",
        ),
    ),
)


def layer_of(module: str) -> int:
    """The rank of ``module``'s layer (0 is the top)."""
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank >= 0, f"{module} is in no layer: add it to LAYERS"
    return rank


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The netcarve modules (or module attributes) an import statement names, relative imports resolved and
    the package's lazy names (``from netcarve import analyze``) taken to their modules."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module_name(path).split(".")
            if path.name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" for alias in node.names]
    lazy = netcarve._LAZY
    out = []
    for name in names:
        if name.startswith("netcarve.") and name.split(".")[1] in lazy and name.count(".") == 1:
            name = lazy[name.split(".")[1]]
        if name == "netcarve" or name.startswith("netcarve."):
            out.append(name)
    return out


def upward_imports() -> list[str]:
    found = []
    for path in sorted((SRC / "netcarve").rglob("*.py")):
        source = module_name(path)
        own = layer_of(source)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in imported(path, node):
                if layer_of(target) >= own:
                    continue
                found.append(
                    f"{path.relative_to(SRC)}:{node.lineno}: {source} ({LAYERS[own][0]}) imports {target} "
                    f"({LAYERS[layer_of(target)][0]})"
                )
    return found


def test_no_import_goes_up_a_layer() -> None:
    bad = upward_imports()
    assert not bad, "\n".join(bad)


def test_the_scan_sees_imports_inside_functions() -> None:
    """The scan itself: a function-level, a relative and a TYPE_CHECKING import are all seen and resolved."""
    path = SRC / "netcarve" / "config" / "probe.py"
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from netcarve.search import plan\n"
        "def f():\n    from ..train import loop\n    import netcarve.cli.app\n"
        "from netcarve import analyze\n"
    )
    targets = [
        t for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom) for t in imported(path, node)
    ]
    layers = {t: LAYERS[layer_of(t)][0] for t in targets}
    assert layers == {
        "netcarve.search.plan": "search",
        "netcarve.train.loop": "ir/train/data/models",
        "netcarve.cli.app": "cli",
        "netcarve.analysis.api": "analysis",
    }
    assert layer_of("netcarve.config.probe") > max(layer_of(t) for t in targets)


LIGHT = sorted(
    {module_name(p) for p in (SRC / "netcarve" / "config").rglob("*.py")}
    | {module_name(p) for p in (SRC / "netcarve" / "report").rglob("*.py")}
    | {"netcarve.metrics", "netcarve.outcomes", "netcarve.optuna_internals", "netcarve.cli.app"}
)


def test_light_modules_import_no_torch() -> None:
    """config/, report/, metrics.py, outcomes.py, optuna_internals.py and cli/app.py load neither torch nor
    (except cli/app.py, which loads nothing heavy either) Optuna when imported."""
    code = (
        f"import importlib, sys\nfor m in {LIGHT!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'optuna'))\nassert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
