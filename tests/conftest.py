"""Shared fixtures: an isolated data cache and small datasets built once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the JSC cache away from the user's home and make CPU results deterministic."""
    old = os.environ.get("NETCARVE_CACHE")
    os.environ["NETCARVE_CACHE"] = str(tmp_path_factory.mktemp("netcarve-cache"))
    torch.use_deterministic_algorithms(True)
    yield
    if old is None:
        os.environ.pop("NETCARVE_CACHE", None)
    else:
        os.environ["NETCARVE_CACHE"] = old


@pytest.fixture(scope="session")
def jsc_info():  # type: ignore[no-untyped-def]
    from netcarve.data.jsc_schema import jsc_info as make

    return make()


@pytest.fixture(scope="session")
def synthetic_small():  # type: ignore[no-untyped-def]
    from netcarve.data import load_dataset

    return load_dataset("synthetic-jsc:3000")


@pytest.fixture(scope="session")
def digits():  # type: ignore[no-untyped-def]
    from netcarve.data import load_dataset

    return load_dataset("digits")
