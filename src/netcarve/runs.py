"""Run directories ``runs/<project>/<timestamp>/`` with the effective config and a manifest.

Nothing existing is overwritten: a second run in the same second gets a ``-2`` suffix.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from netcarve import __version__
from netcarve.config.writer import dumps_toml
from netcarve.errors import ConfigError
from netcarve.paths import make_dirs, output_dir
from netcarve.redact import redact


def _git_state() -> dict[str, Any]:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        return {"commit": head, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _versions() -> dict[str, str]:
    out = {"netcarve": __version__, "python": platform.python_version()}
    for name in ("torch", "optuna", "numpy", "pydantic", "sklearn"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = str(getattr(module, "__version__", "?"))
    return out


def check_run_root(project_dir: str | Path, project: str) -> Path:
    """``project_dir/project`` unless a directory cannot be made there (a ConfigError naming the path as
    given): the check a command makes before it starts, and again when it creates its run dir."""
    output_dir(project_dir, "project_dir", ConfigError)
    return output_dir(Path(project_dir) / project, "project folder", ConfigError)


def create_run_dir(project_dir: str | Path, project: str) -> Path:
    """A new, empty run dir; the project's ``latest`` link points to it. A ``project_dir`` (or project folder)
    that is a file or lies under one, or cannot be created, is a ConfigError naming it as given."""
    root = make_dirs(check_run_root(project_dir, project), "project folder", ConfigError)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1, 10_000):
        candidate = root / (stamp if i == 1 else f"{stamp}-{i}")
        try:
            candidate.mkdir()
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot create a run dir in {str(root)!r}: {exc.strerror or exc}") from exc
    latest = root / "latest"
    try:
        if latest.is_symlink() or not latest.exists():
            tmp = root / f".latest-{os.getpid()}"
            if tmp.is_symlink():
                tmp.unlink()
            tmp.symlink_to(candidate.name)
            tmp.replace(latest)
    except OSError:
        pass
    return candidate


def write_run_files(
    run_dir: Path, config: Mapping[str, Any], command: str, seed: int, extra: Mapping[str, Any]
) -> None:
    """config.toml and manifest.json of a new run; URL passwords (command line, config) are masked."""
    (run_dir / "config.toml").write_text(dumps_toml(redact(config)))
    manifest = {
        "command": command,
        "argv": sys.argv,
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "seed": seed,
        "versions": _versions(),
        "git": _git_state(),
        "host": platform.node(),
        **extra,
    }
    (run_dir / "manifest.json").write_text(json.dumps(redact(manifest), indent=2, default=str) + "\n")
