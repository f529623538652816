"""The JSC (hls4ml LHC jet, high-level features) schema: 16 features, classes g, q, w, z, t."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from netcarve.data.base import DatasetInfo, row_text
from netcarve.errors import DataError

FEATURES: tuple[str, ...] = (
    "j_zlogz",
    "j_c1_b0_mmdt",
    "j_c1_b1_mmdt",
    "j_c1_b2_mmdt",
    "j_c2_b1_mmdt",
    "j_c2_b2_mmdt",
    "j_d2_b1_mmdt",
    "j_d2_b2_mmdt",
    "j_d2_a1_b1_mmdt",
    "j_d2_a1_b2_mmdt",
    "j_m2_b1_mmdt",
    "j_m2_b2_mmdt",
    "j_n2_b1_mmdt",
    "j_n2_b2_mmdt",
    "j_mass_mmdt",
    "j_multiplicity",
)
CLASSES: tuple[str, ...] = ("g", "q", "w", "z", "t")
ONE_HOT: tuple[str, ...] = tuple(f"j_{c}" for c in CLASSES)
CLASS_COLUMN = "class"


def jsc_info(name: str = "jsc") -> DatasetInfo:
    return DatasetInfo(name, len(FEATURES), len(CLASSES), CLASSES, FEATURES)


def numeric_column(values: np.ndarray, name: str, source: str, first_line: int | None = None) -> np.ndarray:
    """A column as float64; a cell that is not a number is an error naming the column, the row and the cell."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        for i, cell in enumerate(np.asarray(values).tolist()):
            try:
                float(cell)
            except (TypeError, ValueError):
                text = "is empty" if str(cell).strip() == "" else f"has the non-numeric value {cell!r}"
                raise DataError(f"{source}: column {name!r} {text} in {row_text(i, first_line)}") from exc
        raise DataError(f"{source}: column {name!r} is not numeric: {exc}") from exc


def _labels_from_class(values: np.ndarray, source: str, first_line: int | None = None) -> np.ndarray:
    if values.dtype.kind in "iuf":
        outside = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values >= len(CLASSES))
        bad = np.flatnonzero(outside)
        if bad.size:
            raise DataError(
                f"{source}: column 'class' has {values[bad[0]].item()!r} in {row_text(int(bad[0]), first_line)}: "
                "labels must be 0..4 or g/q/w/z/t"
            )
        labels = values.astype(np.int64)
    else:
        text = np.char.lower(np.char.strip(values.astype(str)))
        text = np.char.replace(text, "j_", "")
        lookup = {c: i for i, c in enumerate(CLASSES)}
        unknown = sorted(set(np.unique(text).tolist()) - set(lookup))
        if unknown:
            raise DataError(f"{source}: column 'class' has unknown labels {unknown[:5]} (expected g, q, w, z, t)")
        labels = np.vectorize(lookup.__getitem__, otypes=[np.int64])(text)
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(f"{source}: column 'class' must hold 0..4 or g/q/w/z/t")
    return labels


def arrays_from_columns(
    columns: Mapping[str, np.ndarray], source: str, first_line: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, 16) in schema order and labels (N,) in class order g,q,w,z,t, from named columns.

    Labels come from a ``class`` column (g/q/w/z/t or 0–4) or from one-hot ``j_g … j_t`` columns. A cell
    that is not a number names its column and row (``first_line``: the file line of the first data row).
    """
    missing = [f for f in FEATURES if f not in columns]
    has_class = CLASS_COLUMN in columns
    has_onehot = all(c in columns for c in ONE_HOT)
    if not has_class and not has_onehot:
        missing.append("class (or j_g, j_q, j_w, j_z, j_t)")
    if missing:
        raise DataError(f"{source}: missing JSC columns: {', '.join(missing)}")
    used = [*FEATURES, *([CLASS_COLUMN] if has_class else ONE_HOT)]
    lengths = {name: len(np.asarray(columns[name]).reshape(-1)) for name in used}
    if len(set(lengths.values())) > 1:
        short, long = min(lengths, key=lengths.__getitem__), max(lengths, key=lengths.__getitem__)
        raise DataError(
            f"{source}: columns have different lengths: {short!r} has {lengths[short]} rows, "
            f"{long!r} has {lengths[long]}"
        )
    x = np.stack([numeric_column(columns[f], f, source, first_line) for f in FEATURES], axis=1)
    if has_class:
        y = _labels_from_class(np.asarray(columns[CLASS_COLUMN]), source, first_line)
    else:
        onehot = np.stack([numeric_column(columns[c], c, source, first_line) for c in ONE_HOT], axis=1)
        y = onehot.argmax(axis=1).astype(np.int64)
    return x, y
