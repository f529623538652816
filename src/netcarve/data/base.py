"""Dataset types, the dataset registry and the shared processing rule (dedup, split, standardise)."""

from __future__ import annotations

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
    seed: int = SPLIT_SEED


DatasetBuilder = Callable[[DataOptions], TensorSplits]
DATASETS: Registry[DatasetBuilder] = Registry("dataset")


def deduplicate(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated (features, label) rows, keeping first occurrences in their original order."""
    rows = np.concatenate([x.astype(np.float64), y.reshape(-1, 1).astype(np.float64)], axis=1)
    _, first = np.unique(rows, axis=0, return_index=True)
    keep = np.sort(first)
    return x[keep], y[keep]


def process(x: np.ndarray, y: np.ndarray, info: DatasetInfo, source: str = "", dedup: bool = True) -> TensorSplits:
    """The one processing rule of every dataset: dedup, stratified 70/10/20 split (seed 42), scaler on train."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise DataError(f"{info.name}: features must be (N, F) and labels (N,), got {x.shape} and {y.shape}")
    if dedup:
        x, y = deduplicate(x, y)
    counts = np.bincount(y, minlength=info.num_classes)
    stratify = y if counts.min() >= 10 else None
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, train_size=SPLIT_FRACTIONS[0], random_state=SPLIT_SEED, stratify=stratify
    )
    rest_val = SPLIT_FRACTIONS[1] / (SPLIT_FRACTIONS[1] + SPLIT_FRACTIONS[2])
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest,
        y_rest,
        train_size=rest_val,
        random_state=SPLIT_SEED,
        stratify=y_rest if stratify is not None else None,
    )
    scaler = StandardScaler().fit(x_train)

    def make(xs: np.ndarray, ys: np.ndarray) -> Split:
        scaled = scaler.transform(xs).astype(np.float32)
        return Split(torch.from_numpy(np.ascontiguousarray(scaled)), torch.from_numpy(ys.astype(np.int64)))

    return TensorSplits(info, make(x_train, y_train), make(x_val, y_val), make(x_test, y_test), source)
