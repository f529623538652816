"""Datasets: real JSC, embedded offline sets and synthetic-jsc, all as resident tensor splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netcarve.data import embedded, jsc, synthetic  # noqa: F401  (register the datasets)
from netcarve.data.base import DATASETS, DataOptions, DatasetInfo, Split, TensorSplits
from netcarve.data.jsc_files import READERS
from netcarve.errors import DataError, NetcarveError

__all__ = [
    "DATASETS",
    "DataOptions",
    "DatasetInfo",
    "Split",
    "TensorSplits",
    "load_dataset",
    "parse_dataset_spec",
    "training_defaults",
]


def parse_dataset_spec(spec: str) -> tuple[str, DataOptions]:
    """``digits`` | ``synthetic-jsc:630000`` | ``jsc:path/file.h5`` | ``path/to/file.csv`` → (name, options)."""
    name, sep, arg = spec.partition(":")
    if not (sep and name in DATASETS) and Path(spec).suffix.lower() in READERS:
        return "jsc", DataOptions(path=spec)
    if name not in DATASETS and Path(spec).is_dir():
        raise DataError(
            f"dataset {spec!r} is a directory: give a file ({', '.join(READERS.names())}) or a dataset name"
        )
    canonical = DATASETS.canonical(name)
    if not arg:
        return canonical, DataOptions()
    if canonical == "jsc":
        return canonical, DataOptions(path=arg)
    if canonical == "synthetic-jsc":
        try:
            size = int(arg.replace("_", ""))
        except ValueError as exc:
            raise DataError(f"dataset {spec!r}: the size after ':' must be an integer") from exc
        if size < 100:
            raise DataError(f"dataset {spec!r}: at least 100 rows are needed")
        return canonical, DataOptions(size=size)
    raise DataError(f"dataset {name!r} takes no argument (got {spec!r})")


def training_defaults(spec: str) -> dict[str, Any]:
    """The recommended training settings of the dataset ``spec`` names (config key → value; a local JSC file
    gets those of ``jsc``), or ``{}`` for a spec that names no registered dataset (the error comes later,
    when the data is loaded). They rank just above the config defaults: a TOML key, flag or --set wins."""
    try:
        name, _ = parse_dataset_spec(spec)
    except NetcarveError:
        return {}
    return dict(DATASETS.entry(name).defaults)


def load_dataset(spec: str, cache_dir: str | None = None) -> TensorSplits:
    """Load a dataset by its spec into resident train/val/test tensors."""
    name, options = parse_dataset_spec(spec)
    if cache_dir is not None:
        options = DataOptions(options.path, options.size, cache_dir)
    return DATASETS.get(name)(options)
