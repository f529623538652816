"""Readers of local JSC files by suffix: csv, parquet (pyarrow), npz, and MASE's CERNBox h5 (h5py)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from netcarve.errors import DataError
from netcarve.paths import existing_file
from netcarve.registry import Registry

Columns = dict[str, np.ndarray]
READERS: Registry[Callable[[Path], Columns]] = Registry("JSC file format")
H5_TABLE = "t_allpar_new"


@READERS.register(".csv", description="comma-separated, header row with the JSC column names")
def read_csv(path: Path) -> Columns:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration as exc:
            raise DataError(f"{path}: file is empty") from exc
        rows = []
        for row in reader:
            if len(row) != len(header):
                raise DataError(f"{path}: line {reader.line_num} has {len(row)} fields, the header has {len(header)}")
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no data rows")
    table = np.array(rows, dtype=str)
    out: Columns = {}
    for i, name in enumerate(header):
        column = table[:, i]
        try:
            out[name] = column.astype(np.float64)
        except ValueError:
            out[name] = column
    return out


@READERS.register(".parquet", description="Apache Parquet (needs the 'parquet' extra: pyarrow)")
def read_parquet(path: Path) -> Columns:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError(f"{path}: reading parquet needs pyarrow: pip install 'netcarve[parquet]'") from exc
    table = pq.read_table(path)
    return {name: table.column(name).to_numpy() for name in table.column_names}


@READERS.register(".npz", description="numpy archive with one array per JSC column")
def read_npz(path: Path) -> Columns:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


@READERS.register(".h5", aliases=(".hdf5",), description=f"MASE's CERNBox h5 with the '{H5_TABLE}' table")
def read_h5(path: Path) -> Columns:
    try:
        import h5py
    except ImportError as exc:
        raise DataError(f"{path}: reading h5 needs h5py: pip install 'netcarve[h5]'") from exc
    with h5py.File(path, "r") as fh:
        if H5_TABLE not in fh:
            raise DataError(f"{path}: no '{H5_TABLE}' table (found: {', '.join(fh.keys())})")
        data = fh[H5_TABLE][()]
    names = data.dtype.names or ()
    return {name: np.asarray(data[name]) for name in names}


def read_columns(path: str | Path) -> Columns:
    p = existing_file(path, "dataset file", DataError)
    suffix = p.suffix.lower()
    if suffix not in READERS:
        raise DataError(f"{p}: unsupported file type {suffix!r} (use {', '.join(READERS.names())})")
    try:
        return READERS.get(suffix)(p)
    except DataError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{p}: cannot read the file: {exc}") from exc
