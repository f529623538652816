"""Bad local dataset files: every problem is a DataError naming the file, the column and the row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netcarve.data import DataOptions, DatasetInfo, load_dataset, parse_dataset_spec
from netcarve.data.base import MIN_ROWS, process, split_sizes
from netcarve.data.jsc import build_jsc
from netcarve.data.synthetic import synthetic_jsc_columns
from netcarve.errors import DataError
from tests.data.test_jsc import write_csv, write_npz, write_parquet

N = 200


@pytest.fixture
def cols() -> dict[str, np.ndarray]:
    return synthetic_jsc_columns(N, seed=5)


def build(path: Path) -> None:
    build_jsc(DataOptions(path=str(path), cache_dir=str(path.parent / "cache")))


def test_min_rows_is_the_smallest_count_that_fills_every_split() -> None:
    assert min(split_sizes(MIN_ROWS)) == 1
    assert min(split_sizes(MIN_ROWS - 1)) == 0
    assert split_sizes(10) == (7, 1, 2)


def test_non_numeric_cell_names_column_data_row_and_line(tmp_path: Path, cols: dict[str, np.ndarray]) -> None:
    bad = {k: v.astype(object) for k, v in cols.items()}
    bad["j_mass_mmdt"][41] = "abc"  # data row 42, line 43 (line 1 is the header)
    with pytest.raises(DataError) as info:
        build(write_csv(tmp_path / "bad.csv", bad))
    assert str(info.value) == (
        f"{tmp_path / 'bad.csv'}: column 'j_mass_mmdt' has the non-numeric value 'abc' in data row 42 (line 43)"
    )


def test_empty_cell_is_named_as_empty(tmp_path: Path, cols: dict[str, np.ndarray]) -> None:
    bad = {k: v.astype(object) for k, v in cols.items()}
    bad["j_zlogz"][0] = ""
    with pytest.raises(DataError, match=r"column 'j_zlogz' is empty in data row 1 \(line 2\)"):
        build(write_csv(tmp_path / "empty.csv", bad))


def test_ragged_line_is_named(tmp_path: Path, cols: dict[str, np.ndarray]) -> None:
    path = write_csv(tmp_path / "ragged.csv", cols)
    lines = path.read_text().splitlines()
    lines[5] = "1,2,3"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"ragged\.csv: line 6 has 3 fields, the header has 17"):
        build(path)


@pytest.mark.parametrize(("value", "shown"), [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_nan_or_inf_feature_names_the_column(
    tmp_path: Path, cols: dict[str, np.ndarray], value: float, shown: str
) -> None:
    bad = {k: v.copy() for k, v in cols.items()}
    bad["j_c2_b1_mmdt"][[9, 30, 31]] = value
    with pytest.raises(DataError) as info:
        build(write_csv(tmp_path / "nan.csv", bad))
    message = str(info.value)
    assert f"column 'j_c2_b1_mmdt' has {shown} in data row 10 (line 11) (and 2 more rows)" in message
    assert message.startswith(str(tmp_path / "nan.csv"))


@pytest.mark.parametrize(("value", "shown"), [(1e200, "1e+200"), (-3.5e38, "-3.5e+38")])
def test_finite_feature_beyond_float32_names_the_column(
    tmp_path: Path, cols: dict[str, np.ndarray], value: float, shown: str
) -> None:
    """A finite value beyond float32's range (largest 3.40282e38) is refused at load: 1e200 (its square
    overflows the scaler's float64 variance) and −3.5e38 (just beyond float32); 3.4e38 itself is kept."""
    bad = {k: v.copy() for k, v in cols.items()}
    bad["j_zlogz"] = bad["j_zlogz"].astype(np.float64)
    bad["j_zlogz"][[4, 7]] = value
    with pytest.raises(DataError) as info:
        build(write_csv(tmp_path / "huge.csv", bad))
    assert str(info.value) == (
        f"{tmp_path / 'huge.csv'}: column 'j_zlogz' has {shown} in data row 5 (line 6) (and 1 more row), beyond "
        "float32's range (±3.4e+38) that netcarve computes in: rescale the column, or drop or fill those rows"
    )
    bad["j_zlogz"][[4, 7]] = 3.4e38
    build(write_csv(tmp_path / "edge.csv", bad))


def test_too_few_rows_says_how_many_are_needed_and_given(tmp_path: Path, cols: dict[str, np.ndarray]) -> None:
    small = {k: v[:5] for k, v in cols.items()}
    with pytest.raises(
        DataError, match=rf"too few rows to split .*at least {MIN_ROWS} are needed, the data has 5 rows"
    ):
        build(write_csv(tmp_path / "small.csv", small))


def test_too_few_distinct_rows_counts_duplicates(tmp_path: Path, cols: dict[str, np.ndarray]) -> None:
    dup = {k: np.concatenate([v[:3]] * 4) for k, v in cols.items()}  # 12 rows, 3 distinct
    with pytest.raises(DataError, match=r"the data has 3 distinct rows \(12 before dropping duplicates\)"):
        build(write_csv(tmp_path / "dup.csv", dup))


def test_exactly_min_rows_is_enough(tmp_path: Path, cols: dict[str, np.ndarray]) -> None:
    few = {k: v[:MIN_ROWS] for k, v in cols.items()}
    few["class"] = np.array(["g", "q"] * MIN_ROWS)[:MIN_ROWS]
    splits = build_jsc(DataOptions(path=str(write_csv(tmp_path / "few.csv", few)), cache_dir=str(tmp_path / "c")))
    assert (len(splits.train), len(splits.val), len(splits.test)) == split_sizes(MIN_ROWS)


def test_single_class_is_an_error(tmp_path: Path, cols: dict[str, np.ndarray]) -> None:
    one = dict(cols, **{"class": np.full(N, "w")})
    with pytest.raises(DataError, match="every row has the same class 'w': a classifier needs at least two classes"):
        build(write_csv(tmp_path / "one.csv", one))


def test_npz_goes_through_the_same_checks(tmp_path: Path, cols: dict[str, np.ndarray]) -> None:
    bad = {k: v.copy() for k, v in cols.items()}
    bad["j_multiplicity"][3] = np.nan
    with pytest.raises(DataError, match=r"bad\.npz: column 'j_multiplicity' has NaN in data row 4(?! \(line)"):
        build(write_npz(tmp_path / "bad.npz", bad))
    text = {k: v.copy() for k, v in cols.items()}
    text["j_zlogz"] = text["j_zlogz"].astype("U12")
    text["j_zlogz"][7] = "x"
    with pytest.raises(DataError, match=r"text\.npz: column 'j_zlogz' has the non-numeric value 'x' in data row 8$"):
        build(write_npz(tmp_path / "text.npz", text))
    short = dict(cols, j_zlogz=cols["j_zlogz"][:-1])
    with pytest.raises(DataError, match=r"columns have different lengths: 'j_zlogz' has 199 rows, '\w+' has 200"):
        build(write_npz(tmp_path / "short.npz", short))


def test_parquet_goes_through_the_same_checks(tmp_path: Path, cols: dict[str, np.ndarray]) -> None:
    bad = {k: v.copy() for k, v in cols.items()}
    bad["j_n2_b2_mmdt"][0] = np.inf
    with pytest.raises(DataError, match=r"column 'j_n2_b2_mmdt' has inf in data row 1"):
        build(write_parquet(tmp_path / "bad.parquet", bad))
    one = dict(cols, **{"class": np.full(N, "t")})
    with pytest.raises(DataError, match="every row has the same class 't'"):
        build(write_parquet(tmp_path / "one.parquet", one))


def test_process_names_feature_columns_of_any_dataset() -> None:
    """The finite and class checks live in ``process``, shared by every dataset (embedded ones included)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 3)), np.arange(50) % 2
    x[17, 2] = np.nan
    info = DatasetInfo("toy", 3, 2, ("a", "b"), ("p", "q", "r"))
    with pytest.raises(DataError, match=r"^toy: column 'r' has NaN in data row 18: "):
        process(x, y, info)
    with pytest.raises(DataError, match=r"^src: every row has the same class 'b'"):
        process(np.nan_to_num(x), np.ones(50, dtype=int), info, source="src")


def test_directory_as_dataset_says_so(tmp_path: Path) -> None:
    (tmp_path / "data.csv").mkdir()
    with pytest.raises(DataError, match=r"dataset file '.*data\.csv' is a directory, not a file"):
        load_dataset(str(tmp_path / "data.csv"))
    with pytest.raises(DataError, match=r"dataset '.*' is a directory: give a file \(\.csv"):
        parse_dataset_spec(str(tmp_path))
    with pytest.raises(DataError, match=r"is a directory, not a file"):
        load_dataset(f"jsc:{tmp_path}")
