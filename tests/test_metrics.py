"""netcarve.metrics: one registry of metric facts, readable without torch, Optuna or the search."""

from __future__ import annotations

import subprocess
import sys

from netcarve.metrics import METRICS, canonical_metric, table_order, unit_of


def test_table_order_is_registry_order_then_unknown_sorted() -> None:
    assert table_order(["model_size", "zeta", "accuracy", "alpha", "accuracy"]) == [
        "accuracy",
        "model_size",
        "alpha",
        "zeta",
    ]


def test_units_and_names() -> None:
    assert unit_of("model_size") == "bytes" and unit_of("latency") == "ms" and unit_of("no-such") == ""
    assert canonical_metric("no-such") == "no-such"
    assert all(canonical_metric(name) == name for name in METRICS.names())


def test_metrics_imports_neither_torch_optuna_nor_the_search() -> None:
    code = (
        "import netcarve.metrics, sys; bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', "
        "'optuna') or m.startswith('netcarve.search')); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
