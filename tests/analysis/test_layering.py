"""The analysis sits below the transforms: counting a graph loads nothing of ``netcarve.transforms``."""

from __future__ import annotations

import subprocess
import sys


def test_analysis_does_not_import_the_transforms() -> None:
    code = (
        "import netcarve.analysis, netcarve.analysis.counter, netcarve.analysis.render, sys; "
        "bad = sorted(m for m in sys.modules if m.startswith('netcarve.transforms')); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_fake_quant_flag_is_set_only_inside_its_scope() -> None:
    from netcarve.ir.fakequant import fake_quant_scope, in_fake_quant

    assert not in_fake_quant()
    with fake_quant_scope():
        assert in_fake_quant()
        with fake_quant_scope():
            assert in_fake_quant()
        assert in_fake_quant()
    assert not in_fake_quant()
