"""Training sits below the transforms: the training loop, its driver and population training import nothing
of ``netcarve.transforms``, at module level or inside a function, and loading them loads nothing of it.
(``checkpoint.py`` still replays transforms when it loads a graph.)"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import netcarve.train

TRAIN = Path(netcarve.train.__file__).parent


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.append(node.module)
    return names


def test_training_modules_do_not_import_the_transforms() -> None:
    files = sorted((TRAIN / "population").rglob("*.py")) + [
        TRAIN / f"{m}.py" for m in ("driver", "loop", "optim", "records")
    ]
    assert TRAIN / "population" / "__init__.py" in files and len(files) >= 11
    upward = {str(f.relative_to(TRAIN)): n for f in files for n in _imports(f) if n.startswith("netcarve.transforms")}
    assert upward == {}


def test_population_training_loads_no_transforms() -> None:
    code = (
        "import netcarve.train.population as p, netcarve.train.loop, sys; "
        "from netcarve.ir.opspecs import OPS; from netcarve.train.population.layers import batched_kind; "
        "[batched_kind(OPS.get(k)) for k in OPS]; "
        "bad = sorted(m for m in sys.modules if m.startswith('netcarve.transforms')); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
