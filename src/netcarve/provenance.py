"""What a run was made from: the resolved path and sha256 of a user model file and of a dataset file.

A user model ``path/to/file.py:callable`` and a dataset file (``data.csv``, ``jsc:path/file.h5``) are stored
by their resolved path, so a run dir, a checkpoint or a stored study works from any directory, and by the
sha256 of the file's content, so a model is compared by what it is (callable name + file content), not by
how its path was spelled, and a file moved since (``--model`` / ``--dataset``) is checked against it.
Checkpoints and run dirs written before the hash was stored compare by resolved path.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netcarve.errors import ConfigError, ModelError, NetcarveError

log = logging.getLogger(__name__)

#: hex digits of a sha256 shown in messages
SHORT = 12


@dataclass(frozen=True)
class FileRef:
    """A file a run was made from: the spec as stored (resolved path) and the file's sha256."""

    spec: str
    path: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"spec": self.spec, "path": self.path, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Any) -> FileRef | None:
        """The ref stored as ``data``, or None when it is not one (absent or written by something else)."""
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("spec", "path", "sha256")):
            return None
        return cls(data["spec"], data["path"], data["sha256"])


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def short(digest: str | None) -> str:
    return f"{digest[:SHORT]}…" if digest else "not recorded"


# --- models -----------------------------------------------------------------------------------------------
def model_file(spec: str) -> tuple[str, str] | None:
    """(file, callable) of a ``file.py:callable`` spec; None for a registered model or ``module:callable``."""
    target, sep, attr = spec.rpartition(":")
    return (target, attr) if sep and target.endswith(".py") and attr else None


def resolved_model(spec: str) -> str:
    """``spec`` with its model file's resolved path (unchanged when it names no existing file)."""
    parts = model_file(spec)
    if parts is None or not Path(parts[0]).is_file():
        return spec
    return f"{Path(parts[0]).resolve()}:{parts[1]}"


def model_sha256(spec: str) -> str | None:
    """The sha256 of ``spec``'s model file; None when it names no existing file."""
    parts = model_file(spec)
    return sha256_of(parts[0]) if parts is not None and Path(parts[0]).is_file() else None


def _require_file(path: str, what: str) -> None:
    if Path(path).is_dir():
        raise ModelError(f"{what} {path!r} is a directory, not a file")
    if not Path(path).is_file():
        raise ModelError(f"{what} {path!r} does not exist")


def same_model(stored: str, stored_sha256: str | None, given: str) -> bool:
    """Whether ``given`` is the model ``stored`` was: for model files, the same callable in a file with the
    stored sha256 (without one: the same resolved path); otherwise the same name. A model file that does not
    exist is a ModelError."""
    mine, theirs = model_file(stored), model_file(given)
    if mine is None or theirs is None:
        return stored == given
    _require_file(theirs[0], "user model file")
    if mine[1] != theirs[1]:
        return False
    if stored_sha256 is None:
        return Path(mine[0]).resolve() == Path(theirs[0]).resolve()
    return sha256_of(theirs[0]) == stored_sha256


def describe_model(spec: str, sha256: str | None) -> str:
    """``'spec'`` and, for a model file, its sha256 in short form (what a mismatch message shows)."""
    if model_file(spec) is None:
        return repr(spec)
    return f"{spec!r} (sha256 {short(sha256)})"


def relocated_model(stored: str, stored_sha256: str | None, given: str, option: str = "--model") -> str:
    """The stored model spec with its file replaced by ``given`` (``file.py`` or ``file.py:callable``; moved
    since), which must have the stored sha256: another file is a ConfigError naming ``option`` and both
    hashes. Without a stored sha256 (written by an older netcarve) ``given`` is taken as it is, with a
    warning."""
    parts = model_file(stored)
    if parts is None:
        raise ConfigError(f"{option} points at a moved model file, but the model is {stored!r}, not a file.py:callable")
    target, sep, attr = given.rpartition(":")
    if not (sep and target.endswith(".py")):
        target, attr = given, parts[1]
    elif attr != parts[1]:
        raise ConfigError(f"{option} {given!r} names callable {attr!r}, but the model is {parts[1]!r} of {parts[0]!r}")
    _require_file(target, f"{option}")
    _check_moved(target, stored_sha256, option, given, "model file the run was made with", parts[0],
                 f"{stored} records no hash of its model file")  # fmt: skip
    return f"{Path(target).resolve()}:{parts[1]}"


def _check_moved(
    target: str, stored_sha256: str | None, option: str, given: str, what: str, original: str, unhashed: str
) -> None:
    """The file ``target`` (which ``option`` gave as ``given``) must have the sha256 the run stored for its
    ``what`` (at ``original``): another is a ConfigError naming both hashes. None stored: warned with
    ``unhashed`` and taken as it is."""
    if stored_sha256 is None:
        log.warning("%s: %s %r is taken as it is", unhashed, option, given)
        return
    digest = sha256_of(target)
    if digest != stored_sha256:
        raise ConfigError(
            f"{option} {given!r} is not the {what}: its sha256 is {short(digest)}, "
            f"the run's {original!r} had {short(stored_sha256)}"
        )


# --- datasets ---------------------------------------------------------------------------------------------
def dataset_file(spec: str) -> str | None:
    """The file a dataset spec reads (``data.csv``, ``jsc:path/file.h5``); None for a named dataset."""
    from netcarve.data import parse_dataset_spec

    try:
        _, options = parse_dataset_spec(spec)
    except NetcarveError:
        return None
    return options.path if options.path and spec.endswith(options.path) else None


def resolved_dataset(spec: str) -> str:
    """``spec`` with its file's resolved path (a ``jsc:`` prefix kept); unchanged when it names no file."""
    path = dataset_file(spec)
    if path is None or not Path(path).is_file():
        return spec
    return spec[: len(spec) - len(path)] + str(Path(path).resolve())


def relocated_dataset(stored: str, stored_sha256: str | None, given: str, option: str = "--dataset") -> str:
    """The stored dataset spec with its file replaced by ``given`` (moved since; a path, or the spec with a
    ``jsc:`` prefix), which must have the stored sha256 (else a ConfigError naming ``option`` and both
    hashes; none stored: taken with a warning)."""
    path = dataset_file(stored)
    if path is None:
        raise ConfigError(f"{option} points at a moved dataset file, but the run's dataset is {stored!r}, not a file")
    target = dataset_file(given) or given
    if Path(target).is_dir():
        raise ConfigError(f"{option} {given!r} is a directory, not a file")
    if not Path(target).is_file():
        raise ConfigError(f"{option} {given!r} does not exist")
    _check_moved(target, stored_sha256, option, given, "dataset file the run was made with", path,
                 f"the run records no hash of its dataset {stored}")  # fmt: skip
    return stored[: len(stored) - len(path)] + str(Path(target).resolve())


# --- what a run records -----------------------------------------------------------------------------------
def file_refs(model: str | None, dataset: str | None) -> dict[str, dict[str, str]]:
    """``{"model": FileRef dict, "dataset": FileRef dict}`` for those of ``model`` and ``dataset`` that name
    existing files (a run's manifest and its stored study keep this)."""
    out: dict[str, dict[str, str]] = {}
    parts = model_file(model) if model else None
    if model and parts is not None and Path(parts[0]).is_file():
        out["model"] = FileRef(resolved_model(model), str(Path(parts[0]).resolve()), sha256_of(parts[0])).to_dict()
    path = dataset_file(dataset) if dataset else None
    if dataset and path is not None and Path(path).is_file():
        out["dataset"] = FileRef(resolved_dataset(dataset), str(Path(path).resolve()), sha256_of(path)).to_dict()
    return out


def check_unchanged(ref: FileRef, what: str, option: str, where: str = "the run") -> None:
    """The file ``where`` (a run, a checkpoint) recorded must still have its sha256 where it was (moved:
    ``option`` points at it)."""
    if not Path(ref.path).is_file():
        raise ConfigError(
            f"the {what} file {where} was made with, {ref.path!r}, does not exist: if it was moved, point {option} "
            "at it"
        )
    digest = sha256_of(ref.path)
    if digest != ref.sha256:
        raise ConfigError(
            f"the {what} file {ref.path!r} changed since {where} was made (sha256 {short(digest)} now, "
            f"{short(ref.sha256)} then): restore it, or point {option} at the original"
        )
