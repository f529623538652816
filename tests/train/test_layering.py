"""Training sits below the transforms: loading population training and resolving every registered kind's
batched layer loads nothing of ``netcarve.transforms`` (no import statement goes up: ``tests/test_layering.py``)."""

from __future__ import annotations

import subprocess
import sys


def test_population_training_loads_no_transforms() -> None:
    code = (
        "import netcarve.train.population as p, netcarve.train.loop, sys; "
        "from netcarve.ir.opspecs import OPS; from netcarve.train.population.layers import batched_kind; "
        "[batched_kind(OPS.get(k)) for k in OPS]; "
        "bad = sorted(m for m in sys.modules if m.startswith('netcarve.transforms')); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
