"""The JSC loaders, tested on small files written here in the real formats (no network)."""

from __future__ import annotations

import csv
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from netcarve.data import DataOptions, load_dataset, parse_dataset_spec
from netcarve.data.jsc import build_jsc
from netcarve.data.jsc_schema import CLASSES, FEATURES, ONE_HOT
from netcarve.data.synthetic import synthetic_jsc_columns
from netcarve.errors import DataError

N = 600


@pytest.fixture(scope="module")
def columns() -> dict[str, np.ndarray]:
    return synthetic_jsc_columns(N, seed=3)


def write_csv(path: Path, cols: dict[str, np.ndarray]) -> Path:
    names = list(cols)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        writer.writerows(zip(*(cols[n].tolist() for n in names), strict=True))
    return path


def write_h5(path: Path, cols: dict[str, np.ndarray]) -> Path:
    """MASE's CERNBox layout: one structured table 't_allpar_new' with features and one-hot labels."""
    h5py = pytest.importorskip("h5py")
    labels = np.array([CLASSES.index(c) for c in cols["class"]])
    fields = [(f, "<f4") for f in FEATURES] + [(c, "<i4") for c in ONE_HOT] + [("j_pt", "<f4")]
    table = np.zeros(len(labels), dtype=fields)
    for f in FEATURES:
        table[f] = cols[f]
    for i, c in enumerate(ONE_HOT):
        table[c] = labels == i
    table["j_pt"] = 500.0
    with h5py.File(path, "w") as fh:
        fh.create_dataset("t_allpar_new", data=table)
    return path


def write_parquet(path: Path, cols: dict[str, np.ndarray]) -> Path:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({k: v for k, v in cols.items()}), path)
    return path


def write_npz(path: Path, cols: dict[str, np.ndarray]) -> Path:
    np.savez(path, **{k: (v.astype("U1") if k == "class" else v) for k, v in cols.items()})
    return path


WRITERS = {"csv": write_csv, "h5": write_h5, "parquet": write_parquet, "npz": write_npz}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_every_format_gives_the_same_splits(tmp_path: Path, columns: dict[str, np.ndarray], fmt: str) -> None:
    """All four formats hold the same rows, so they must give identical processed splits (csv as reference)."""
    ref = build_jsc(DataOptions(path=str(write_csv(tmp_path / "ref.csv", columns)), cache_dir=str(tmp_path / "c0")))
    path = WRITERS[fmt](tmp_path / f"jsc.{fmt}", columns)
    got = build_jsc(DataOptions(path=str(path), cache_dir=str(tmp_path / "c1")))
    for split in ("train", "val", "test"):
        torch.testing.assert_close(got.split(split).x, ref.split(split).x, rtol=1e-6, atol=1e-6)
        assert torch.equal(got.split(split).y, ref.split(split).y)
    assert got.info.class_names == ("g", "q", "w", "z", "t")
    assert got.info.in_features == 16


def test_split_rule_dedup_stratified_and_scaled(tmp_path: Path, columns: dict[str, np.ndarray]) -> None:
    """600 rows + 50 exact duplicates → 600 unique rows split 420/60/120; classes stratified; scaler on train."""
    dup = {k: np.concatenate([v, v[:50]]) for k, v in columns.items()}
    splits = build_jsc(DataOptions(path=str(write_csv(tmp_path / "d.csv", dup)), cache_dir=str(tmp_path / "c")))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (420, 60, 120)
    train_x = splits.train.x.double()
    torch.testing.assert_close(train_x.mean(0), torch.zeros(16, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(train_x.std(0, unbiased=False), torch.ones(16, dtype=torch.float64), atol=1e-4, rtol=0)
    total = np.bincount(np.array([CLASSES.index(c) for c in columns["class"]]), minlength=5) / N
    for part in (splits.train, splits.test):
        frac = np.bincount(part.y.numpy(), minlength=5) / len(part)
        assert np.abs(frac - total).max() < 0.02  # stratified
    rows = torch.cat([splits.train.x, splits.val.x, splits.test.x])
    assert torch.unique(rows, dim=0).shape[0] == 600  # no row in two splits


def test_labels_from_class_letters_follow_gqwzt(tmp_path: Path) -> None:
    cols = synthetic_jsc_columns(200, seed=1)
    cols["class"] = np.array(["t"] * 100 + ["g"] * 100)
    splits = build_jsc(DataOptions(path=str(write_csv(tmp_path / "x.csv", cols)), cache_dir=str(tmp_path / "c")))
    labels = set(torch.cat([splits.train.y, splits.val.y, splits.test.y]).tolist())
    assert labels == {0, 4}  # g → 0, t → 4


def test_missing_columns_named(tmp_path: Path, columns: dict[str, np.ndarray]) -> None:
    cols = {k: v for k, v in columns.items() if k not in ("j_mass_mmdt", "class")}
    path = write_csv(tmp_path / "bad.csv", cols)
    with pytest.raises(DataError, match=r"bad\.csv: missing JSC columns: j_mass_mmdt, class"):
        build_jsc(DataOptions(path=str(path), cache_dir=str(tmp_path / "c")))


def test_h5_without_table(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as fh:
        fh.create_dataset("other", data=np.zeros(3))
    with pytest.raises(DataError, match="no 't_allpar_new' table"):
        build_jsc(DataOptions(path=str(path), cache_dir=str(tmp_path / "c")))


def test_offline_openml_gives_instructions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sklearn.datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", offline)
    with pytest.raises(DataError, match=r"could not be fetched.*OpenML dataset 42468.*t_allpar_new"):
        build_jsc(DataOptions(cache_dir=str(tmp_path)))


def test_offline_openml_retries_do_not_warn_on_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """scikit-learn warns "A network error occurred … Retrying…" before each retry: offline, the CLI's one
    error line would come after a stray warning line; only the DataError is left."""
    import sklearn.datasets

    def offline(*args: object, **kwargs: object) -> None:
        message = "A network error occurred while downloading https://www.openml.org. Retrying..."
        warnings.warn(message, UserWarning, stacklevel=2)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", offline)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(DataError, match="could not be fetched"):
        warnings.simplefilter("always")
        build_jsc(DataOptions(cache_dir=str(tmp_path)))
    assert [str(w.message) for w in caught] == []


def test_openml_path_parses_bunch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fetch_openml(as_frame=False, parser='liac-arff') gives (X, y, feature_names): parsed like a file."""
    import sklearn.datasets
    from sklearn.utils import Bunch

    cols = synthetic_jsc_columns(300, seed=2)
    order = list(reversed(FEATURES))  # OpenML's column order need not be ours
    calls: list[dict[str, object]] = []

    def fake(**kwargs: object) -> Bunch:
        calls.append(kwargs)
        return Bunch(data=np.stack([cols[f] for f in order], 1), target=cols["class"], feature_names=order)

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", fake)
    splits = build_jsc(DataOptions(cache_dir=str(tmp_path)))
    ref = build_jsc(DataOptions(path=str(write_csv(tmp_path / "r.csv", cols)), cache_dir=str(tmp_path / "c2")))
    torch.testing.assert_close(splits.train.x, ref.train.x)
    assert calls[0]["data_id"] == 42468 and calls[0]["parser"] == "liac-arff"
    build_jsc(DataOptions(cache_dir=str(tmp_path)))
    assert len(calls) == 1  # the processed tensors were cached


def test_corrupt_cache_is_rebuilt(tmp_path: Path, columns: dict[str, np.ndarray]) -> None:
    path = write_csv(tmp_path / "j.csv", columns)
    opts = DataOptions(path=str(path), cache_dir=str(tmp_path / "c"))
    first = build_jsc(opts)
    for f in (tmp_path / "c" / "processed").iterdir():
        f.write_bytes(b"broken")
    again = build_jsc(opts)
    assert torch.equal(first.train.x, again.train.x)


def test_dataset_specs() -> None:
    assert parse_dataset_spec("synthetic-jsc:1000")[1].size == 1000
    assert parse_dataset_spec("data/jsc.h5") == ("jsc", DataOptions(path="data/jsc.h5"))
    assert parse_dataset_spec("jsc:x.csv") == ("jsc", DataOptions(path="x.csv"))
    with pytest.raises(DataError, match="must be an integer"):
        parse_dataset_spec("synthetic-jsc:many")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("missing.csv")
