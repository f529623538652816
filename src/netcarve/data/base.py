"""Dataset types, the dataset registry and the shared processing rule (dedup, split, standardise)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from netcarve.errors import DataError
from netcarve.registry import Registry

SPLIT_SEED = 42
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)
SPLIT_NAMES = ("train", "val", "test")
#: MASE's data-loader names for the splits
LOADER_SPLITS = {"train_dataloader": "train", "val_dataloader": "val", "test_dataloader": "test"}


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know of a dataset."""

    name: str
    in_features: int
    num_classes: int
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "in_features": self.in_features,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "feature_names": list(self.feature_names),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> DatasetInfo:
        return cls(
            name=str(data["name"]),
            in_features=int(data["in_features"]),  # type: ignore[call-overload]
            num_classes=int(data["num_classes"]),  # type: ignore[call-overload]
            class_names=tuple(data.get("class_names", ())),  # type: ignore[arg-type]
            feature_names=tuple(data.get("feature_names", ())),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Split:
    """One split, resident as tensors: ``x`` float32 (N, F), ``y`` int64 (N,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def head(self, n: int | None) -> Split:
        return self if n is None or n >= len(self) else Split(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class TensorSplits:
    info: DatasetInfo
    train: Split
    val: Split
    test: Split
    source: str = field(default="")

    def split(self, name: str) -> Split:
        name = LOADER_SPLITS.get(name, name)
        if name not in SPLIT_NAMES:
            raise DataError(f"unknown split {name!r} (choose train, val or test)")
        return getattr(self, name)

    def to(self, device: torch.device) -> TensorSplits:
        return TensorSplits(self.info, self.train.to(device), self.val.to(device), self.test.to(device), self.source)


@dataclass(frozen=True)
class DataOptions:
    """Options of a dataset builder: a local ``path``, a ``size`` (synthetic), the cache dir."""

    path: str | None = None
    size: int | None = None
    cache_dir: str | None = None


DatasetBuilder = Callable[[DataOptions], TensorSplits]
DATASETS: Registry[DatasetBuilder] = Registry("dataset")


def deduplicate(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated (features, label) rows, keeping first occurrences in their original order."""
    rows = np.concatenate([x.astype(np.float64), y.reshape(-1, 1).astype(np.float64)], axis=1)
    _, first = np.unique(rows, axis=0, return_index=True)
    keep = np.sort(first)
    return x[keep], y[keep]


#: the share of the rows left after the train split that go to val (the rest go to test)
_REST_VAL = SPLIT_FRACTIONS[1] / (SPLIT_FRACTIONS[1] + SPLIT_FRACTIONS[2])


def split_sizes(n: int) -> tuple[int, int, int]:
    """Rows in train, val and test for ``n`` rows, as scikit-learn's ``train_test_split`` rounds them."""
    n_train = math.floor(SPLIT_FRACTIONS[0] * n)
    n_val = math.floor(_REST_VAL * (n - n_train))
    return n_train, n_val, n - n_train - n_val


#: the fewest (distinct) rows that give every split at least one row
MIN_ROWS = next(n for n in range(1, 1000) if min(split_sizes(n)) >= 1)


def row_text(index: int, first_line: int | None = None) -> str:
    """Row ``index`` (0-based) for the user: ``data row 42`` (1-based, any header not counted), and for a
    text file whose first data row is on line ``first_line`` also ``(line 43)``."""
    line = f" (line {index + first_line})" if first_line is not None else ""
    return f"data row {index + 1}{line}"


def _column_name(info: DatasetInfo, j: int) -> str:
    return info.feature_names[j] if j < len(info.feature_names) else f"feature {j}"


#: the largest magnitude a feature may have: netcarve computes in float32 (a larger finite value overflows
#: the scaler's variance or the float32 tensors, and training ends "loss is nan")
FEATURE_LIMIT = float(np.finfo(np.float32).max)


def check_features_finite(x: np.ndarray, info: DatasetInfo, source: str, first_line: int | None = None) -> None:
    """NaN, ±inf or a finite value beyond float32's range (|x| > 3.4e38) in a feature is an error naming its
    column and first row (it would only show up later, as a diverging training)."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) | (np.abs(x) > FEATURE_LIMIT)
    if not bad.any():
        return
    j = int(np.argmax(bad.any(axis=0)))
    rows = np.flatnonzero(bad[:, j])
    value = x[rows[0], j]
    more = f" (and {len(rows) - 1} more row{'s' if len(rows) > 2 else ''})" if len(rows) > 1 else ""
    where = f"column {_column_name(info, j)!r} has"
    if np.isfinite(value):
        raise DataError(
            f"{source}: {where} {value:g} in {row_text(int(rows[0]), first_line)}{more}, beyond float32's range "
            f"(±{FEATURE_LIMIT:.3g}) that netcarve computes in: rescale the column, or drop or fill those rows"
        )
    what = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    raise DataError(
        f"{source}: {where} {what} in {row_text(int(rows[0]), first_line)}{more}: "
        "features must be finite numbers; drop or fill those rows"
    )


def check_classes(y: np.ndarray, info: DatasetInfo, source: str) -> None:
    """Labels must lie in 0..num_classes-1 and hold at least two classes."""
    if y.size and (y.min() < 0 or y.max() >= info.num_classes):
        raise DataError(f"{source}: labels must lie in 0..{info.num_classes - 1}, got {int(y.min())}..{int(y.max())}")
    present = np.unique(y)
    if present.size == 1:
        label = int(present[0])
        name = info.class_names[label] if label < len(info.class_names) else str(label)
        raise DataError(f"{source}: every row has the same class {name!r}: a classifier needs at least two classes")


def process(
    x: np.ndarray,
    y: np.ndarray,
    info: DatasetInfo,
    source: str = "",
    dedup: bool = True,
    first_line: int | None = None,
) -> TensorSplits:
    """The one processing rule of every dataset: dedup, stratified 70/10/20 split (seed 42), scaler on train.

    The features must be finite and the labels hold at least two classes; ``first_line`` (the file line
    of the first data row of a text file) lets errors name the line of a bad row as well.
    """
    where = source or info.name
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise DataError(f"{where}: features must be (N, F) and labels (N,), got {x.shape} and {y.shape}")
    check_features_finite(x, info, where, first_line)
    check_classes(y, info, where)
    n_rows = len(y)
    if dedup:
        x, y = deduplicate(x, y)
    if len(y) < MIN_ROWS:
        rows = f"{len(y)} distinct rows ({n_rows} before dropping duplicates)" if len(y) != n_rows else f"{n_rows} rows"
        raise DataError(
            f"{where}: too few rows to split train/val/test {'/'.join(f'{f:.0%}' for f in SPLIT_FRACTIONS)}: "
            f"at least {MIN_ROWS} are needed, the data has {rows}"
        )
    counts = np.bincount(y, minlength=info.num_classes)
    stratify = y if counts.min() >= 10 else None
    try:
        x_train, x_rest, y_train, y_rest = train_test_split(
            x, y, train_size=SPLIT_FRACTIONS[0], random_state=SPLIT_SEED, stratify=stratify
        )
        x_val, x_test, y_val, y_test = train_test_split(
            x_rest,
            y_rest,
            train_size=_REST_VAL,
            random_state=SPLIT_SEED,
            stratify=y_rest if stratify is not None else None,
        )
    except ValueError as exc:  # a case the checks above do not foresee
        raise DataError(f"{where}: cannot split the {len(y)} rows into train/val/test: {exc}") from exc
    scaler = StandardScaler().fit(x_train)

    def make(xs: np.ndarray, ys: np.ndarray) -> Split:
        scaled = scaler.transform(xs).astype(np.float32)
        return Split(torch.from_numpy(np.ascontiguousarray(scaled)), torch.from_numpy(ys.astype(np.int64)))

    return TensorSplits(info, make(x_train, y_train), make(x_val, y_val), make(x_test, y_test), source)
