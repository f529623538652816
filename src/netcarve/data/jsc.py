"""The real JSC dataset: OpenML 42468 through scikit-learn (cached), or a local csv/parquet/npz/h5 file."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from netcarve.data.base import DATASETS, DataOptions, Split, TensorSplits, process
from netcarve.data.jsc_files import read_columns
from netcarve.data.jsc_schema import arrays_from_columns, jsc_info
from netcarve.errors import DataError
from netcarve.paths import existing_file, write_atomically

log = logging.getLogger(__name__)
OPENML_ID = 42468
#: bumped when the processing rule or its checks change, so that older caches are rebuilt (and re-checked)
CACHE_VERSION = 2

HOW_TO_GET = (
    "the JSC data could not be fetched ({reason}). Either run once with network access "
    "(netcarve fetches OpenML dataset 42468 'hls4ml_lhc_jets_hlf' and caches it in {cache}), or pass a local "
    "file as the dataset: 'netcarve train jsc-toy path/to/jsc.h5' (MASE's CERNBox h5 with the 't_allpar_new' "
    "table), or a .csv/.parquet/.npz with the 16 feature columns and 'class'. Offline, try the embedded "
    "'digits' or 'synthetic-jsc'."
)


def cache_dir(options: DataOptions) -> Path:
    root = options.cache_dir or os.environ.get("NETCARVE_CACHE") or Path.home() / ".cache" / "netcarve"
    return Path(root)


def fetch_openml_arrays(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Download (or read from scikit-learn's cache) OpenML 42468 without pandas (liac-arff parser)."""
    from sklearn.datasets import fetch_openml

    try:
        with warnings.catch_warnings():  # its retries warn on stderr; a failure is the one error line below
            warnings.filterwarnings("ignore", message="A network error occurred", category=UserWarning)
            bunch = fetch_openml(data_id=OPENML_ID, data_home=str(cache / "openml"), as_frame=False, parser="liac-arff")
    except Exception as exc:  # network errors come as URLError, OSError, HTTPError, …
        raise DataError(HOW_TO_GET.format(reason=f"{type(exc).__name__}: {exc}", cache=cache)) from exc
    columns = {name: bunch.data[:, i] for i, name in enumerate(bunch.feature_names)}
    columns["class"] = np.asarray(bunch.target)
    return arrays_from_columns(columns, f"OpenML {OPENML_ID}")


def _source_key(path: Path | None) -> str:
    if path is None:
        ident = f"openml-{OPENML_ID}"
    else:
        stat = path.stat()
        ident = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(f"{ident}|v{CACHE_VERSION}".encode()).hexdigest()[:16]


def _save_cache(splits: TensorSplits, file: Path) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    payload = {"info": splits.info.to_dict(), "source": splits.source}
    for name in ("train", "val", "test"):
        part = splits.split(name)
        payload[f"{name}_x"], payload[f"{name}_y"] = part.x, part.y
    write_atomically(file, lambda tmp: torch.save(payload, tmp))


def _load_cache(file: Path) -> TensorSplits | None:
    from netcarve.data.base import DatasetInfo

    try:
        data = torch.load(file, weights_only=True)
        train, val, test = (Split(data[f"{n}_x"], data[f"{n}_y"]) for n in ("train", "val", "test"))
        return TensorSplits(DatasetInfo.from_dict(data["info"]), train, val, test, source=str(data["source"]))
    except Exception as exc:  # a corrupt cache is rebuilt, never trusted
        log.warning("ignoring unreadable dataset cache %s: %s", file, exc)
        return None


#: Recommended training settings of the JSC sets (MASE's lab settings: Adam, lr 1e-3, batch 256, 10 epochs)
JSC_TRAINING_DEFAULTS = {"max_epochs": 10, "batch_size": 256, "learning_rate": 1e-3, "training_optimizer": "adam"}


@DATASETS.register(
    "jsc",
    description="jet substructure (OpenML 42468, 16 features, g/q/w/z/t); or a local file",
    defaults=JSC_TRAINING_DEFAULTS,
)
def build_jsc(options: DataOptions) -> TensorSplits:
    path = existing_file(options.path, "dataset file", DataError) if options.path else None
    cache = cache_dir(options)
    cached_file = cache / "processed" / f"jsc-{_source_key(path)}.pt"
    if cached_file.is_file():
        cached = _load_cache(cached_file)
        if cached is not None:
            return cached
    if path is None:
        x, y = fetch_openml_arrays(cache)
        source, first_line = f"OpenML {OPENML_ID}", None
    else:
        first_line = 2 if path.suffix.lower() == ".csv" else None  # line 1 is the header
        x, y = arrays_from_columns(read_columns(path), str(path), first_line)
        source = str(path)
    splits = process(x, y, jsc_info(), source=source, first_line=first_line)
    _save_cache(splits, cached_file)
    return splits
