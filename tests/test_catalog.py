"""``netcarve models``' rows come from the registry and count what the model holds."""

from __future__ import annotations

from netcarve.catalog import model_rows
from netcarve.models import MODELS


def test_one_row_per_registered_model_with_its_jsc_parameters() -> None:
    """jsc-three-linear-layers on JSC: input BatchNorm1d(16) 2·16 = 32, Linear 16→16 16·16+16 = 272 twice,
    Linear 16→5 16·5+5 = 85: 32 + 272 + 272 + 85 = 661; jsc-tiny: 32 + 85 = 117."""
    rows = {row.name: row for row in model_rows()}
    assert list(rows) == MODELS.names()
    assert rows["jsc-three-linear-layers"].jsc_params == 661
    assert rows["jsc-tiny"].jsc_params == 117
    assert all(row.jsc_params > 0 and row.description for row in rows.values())
