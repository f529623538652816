from __future__ import annotations

import pytest
import torch

from netcarve.data import DATASETS, load_dataset
from netcarve.errors import UnknownNameError


@pytest.mark.parametrize(
    ("name", "rows", "features", "classes"),
    [
        ("digits", 1797, 64, 10),
        ("wine", 178, 13, 3),
        ("breast-cancer", 569, 30, 2),
    ],
)
def test_embedded_shapes_and_split_sizes(name: str, rows: int, features: int, classes: int) -> None:
    """70/10/20 of the de-duplicated rows (scikit-learn's bundled sets have no exact duplicates)."""
    splits = load_dataset(name)
    assert splits.info.in_features == features and splits.info.num_classes == classes
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    assert sum(sizes) == rows
    assert sizes[0] == int(rows * 0.7) or sizes[0] == round(rows * 0.7)
    assert splits.train.x.dtype == torch.float32 and splits.train.y.dtype == torch.int64


def test_synthetic_is_seeded_and_sized() -> None:
    a, b = load_dataset("synthetic-jsc:1000"), load_dataset("synthetic-jsc:1000")
    assert torch.equal(a.train.x, b.train.x)
    assert len(a.train) + len(a.val) + len(a.test) == 1000
    assert a.info.class_names == ("g", "q", "w", "z", "t")


def test_unknown_dataset_suggests() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'digits'"):
        load_dataset("digit")
    assert {"digits", "wine", "breast-cancer", "synthetic-jsc", "jsc"} <= set(DATASETS.names())
