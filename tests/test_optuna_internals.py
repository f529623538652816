"""Optuna's private API is reached from one module only, and each use there still does what it is used for."""

from __future__ import annotations

import ast
from pathlib import Path

import optuna
import pytest

from netcarve.optuna_internals import heartbeat, heartbeat_enabled, hypervolume

SRC = Path(__file__).resolve().parents[1] / "src" / "netcarve"
HOME = SRC / "optuna_internals.py"


def _private_uses(path: Path) -> list[str]:
    """Imports of a private Optuna module or name, and (in a module that imports Optuna) attributes with a
    leading underscore on anything but ``self``/``cls``."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    uses_optuna = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                uses_optuna |= parts[0] == "optuna"
                if parts[0] == "optuna" and any(p.startswith("_") for p in parts):
                    found.append(f"{path.name}:{node.lineno} import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "optuna":
            uses_optuna = True
            names = [a.name for a in node.names]
            if any(p.startswith("_") for p in node.module.split(".")) or any(n.startswith("_") for n in names):
                found.append(f"{path.name}:{node.lineno} from {node.module} import {', '.join(names)}")
    if uses_optuna:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_only_optuna_internals_touches_optuna_private_api() -> None:
    """Every module of src/ but optuna_internals.py uses Optuna's public API only (the scan itself is checked
    on optuna_internals.py, which must be found using private API)."""
    bad = [use for path in sorted(SRC.rglob("*.py")) if path != HOME for use in _private_uses(path)]
    assert not bad, bad
    assert any("_trial_id" in use for use in _private_uses(HOME))
    assert any("optuna._hypervolume" in use for use in _private_uses(HOME))


def test_heartbeat_is_recorded_only_on_a_database_opened_with_an_interval(tmp_path: Path) -> None:
    """The storage's heartbeat comes from RDBStorage's own arguments (open_storage): a journal and a database
    opened without an interval have none, and the heartbeat context is then a no-op."""
    from netcarve.search.storage import open_storage

    journal = open_storage(str(tmp_path / "j.journal"), heartbeat_interval=5)
    plain = open_storage(f"sqlite:///{tmp_path / 'plain.db'}")
    beating = open_storage(f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=5)
    assert not heartbeat_enabled(journal) and not heartbeat_enabled(plain) and heartbeat_enabled(beating)
    assert isinstance(beating, optuna.storages.RDBStorage)
    assert beating.get_heartbeat_interval() == 5
    study = optuna.create_study(storage=journal, study_name="j")
    trial = study.ask()
    with heartbeat(trial, journal):
        pass
    study.tell(trial, 1.0)
    assert study.trials[0].state.name == "COMPLETE"


def test_hypervolume_of_three_objectives_golden() -> None:
    """Two boxes in loss space w.r.t. ref (4, 4, 4): (1, 1, 1) dominates 3³ = 27, (0, 3, 3) dominates
    4 × 1 × 1 = 4, and they share [1, 4) × [3, 4) × [3, 4), 3 × 1 × 1 = 3: 27 + 4 − 3 = 28."""
    assert hypervolume([(1.0, 1.0, 1.0), (0.0, 3.0, 3.0)], (4.0, 4.0, 4.0)) == pytest.approx(28.0)
