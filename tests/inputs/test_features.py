"""Conditioning features: loading checks and the zero-padded window of docs/design.md 3.6."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import psutil
import pytest

from composer.errors import JobError
from composer.inputs.features import feature_window, load_features, release


def _rows(count: int, *shape: int) -> np.ndarray:
    """Rows whose values name them: row r holds r + 1 (never 0, so padding shows)."""
    return (np.arange(count, dtype=np.float32) + 1).reshape(count, *([1] * len(shape))) * np.ones(
        (count, *shape), np.float32
    )


def _expected_window(features: np.ndarray, i: int, window: int) -> np.ndarray:
    rows = []
    for r in range(i - window // 2, i - window // 2 + window):
        rows.append(features[r] if 0 <= r < len(features) else np.zeros(features.shape[1:], np.float32))
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize(
    ("window", "i", "first_row"),
    [
        (8, 0, -4),
        (8, 1, -3),
        (8, 5, 1),
        (8, 9, 5),
        (8, 11, 7),
        (7, 0, -3),
        (7, 3, 0),
        (7, 11, 8),
    ],
)
def test_window_rows_and_zero_padding(window, i, first_row):
    features = _rows(12, 3)
    got = feature_window(features, i, window)
    assert got.shape == (window, 3) and got.dtype == np.float32
    for offset in range(window):
        row = first_row + offset
        expected = row + 1 if 0 <= row < 12 else 0
        assert np.all(got[offset] == expected), f"window row {offset} (features row {row})"


def test_window_of_8_is_i_minus_4_to_i_plus_3():
    features = _rows(20, 2)
    got = feature_window(features, 10, 8)
    assert got[:, 0].tolist() == [7, 8, 9, 10, 11, 12, 13, 14]  # rows 6..13, each holding row + 1


def test_window_of_7_is_i_minus_3_to_i_plus_3():
    features = _rows(20, 2)
    got = feature_window(features, 10, 7)
    assert got[:, 0].tolist() == [8, 9, 10, 11, 12, 13, 14]  # rows 7..13


@pytest.mark.parametrize("i", [0, 1, 2])
def test_window_larger_than_the_array(i):
    features = _rows(3, 2)
    got = feature_window(features, i, 10)
    np.testing.assert_array_equal(got, _expected_window(features, i, 10))
    assert np.count_nonzero(got[:, 0]) == 3  # every row appears once, the rest is padding


def test_multi_dimensional_rows():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(6, 4, 2, 3)).astype(np.float32)
    for i in range(6):
        got = feature_window(features, i, 4)
        assert got.shape == (4, 4, 2, 3)
        np.testing.assert_array_equal(got, _expected_window(features, i, 4))


def test_window_converts_to_float32():
    features = np.arange(10, dtype=np.float64).reshape(5, 2)
    got = feature_window(features, 2, 3)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, features[1:4].astype(np.float32))


# --- load_features ------------------------------------------------------------------------------------------


def test_load_is_memory_mapped(tmp_path):
    data = np.random.default_rng(1).normal(size=(9, 5)).astype(np.float32)
    np.save(tmp_path / "f.npy", data)
    loaded = load_features(tmp_path / "f.npy")
    assert isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(np.asarray(loaded), data)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int16, np.uint8])
def test_load_accepts_numeric_dtypes(tmp_path, dtype):
    np.save(tmp_path / "f.npy", np.ones((4, 2), dtype=dtype))
    assert load_features(tmp_path / "f.npy").shape == (4, 2)


def test_load_refuses_pickled_object_array(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, [2], None], dtype=object), allow_pickle=True)
    with pytest.raises(JobError, match="objects.npy"):
        load_features(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("row", [0, 4, 8])
def test_load_refuses_non_finite_values_naming_the_row(tmp_path, bad, row):
    data = np.zeros((9, 2, 3), dtype=np.float32)
    data[row, 1, 2] = bad
    np.save(tmp_path / "f.npy", data)
    with pytest.raises(JobError, match=rf"row {row}\b"):
        load_features(tmp_path / "f.npy")


def test_load_names_the_first_bad_row(tmp_path):
    data = np.zeros((10, 3), dtype=np.float32)
    data[7, 0] = np.inf
    data[3, 2] = np.nan
    np.save(tmp_path / "f.npy", data)
    with pytest.raises(JobError, match=r"row 3 holds"):
        load_features(tmp_path / "f.npy")


@pytest.mark.parametrize("big", [1e39, -1e39, 1e300])
def test_load_refuses_float64_values_that_float32_cannot_hold(tmp_path, big):
    data = np.ones((6, 2), dtype=np.float64)
    data[4, 1] = big
    data[5, 0] = big
    np.save(tmp_path / "f.npy", data)
    with pytest.raises(JobError) as info:
        load_features(tmp_path / "f.npy")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'f.npy'}: row 4 holds {big:g}, beyond float32's range")
    assert "\n" not in message


def test_load_accepts_float64_values_within_float32s_range(tmp_path):
    data = np.full((3, 2), 3e38, dtype=np.float64)
    data[1] = -1e-300  # underflows to zero: finite
    np.save(tmp_path / "f.npy", data)
    assert load_features(tmp_path / "f.npy").shape == (3, 2)


def test_load_refuses_a_missing_file(tmp_path):
    with pytest.raises(JobError, match="nothere.npy"):
        load_features(tmp_path / "nothere.npy")


def test_load_refuses_strings(tmp_path):
    np.save(tmp_path / "f.npy", np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(JobError, match="numeric"):
        load_features(tmp_path / "f.npy")


def test_load_refuses_an_empty_array(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((0, 5), dtype=np.float32))
    with pytest.raises(JobError, match="no rows"):
        load_features(tmp_path / "f.npy")


def test_load_refuses_a_scalar(tmp_path):
    np.save(tmp_path / "f.npy", np.float32(3))
    with pytest.raises(JobError, match="f.npy"):
        load_features(tmp_path / "f.npy")


def test_load_refuses_a_file_that_is_not_npy(tmp_path):
    path = Path(tmp_path / "f.npy")
    path.write_bytes(b"not an npy file at all" * 4)
    with pytest.raises(JobError, match="f.npy"):
        load_features(path)


def test_released_pages_leave_resident_memory_and_read_back(tmp_path):
    """A long features file read through does not stay in the process's memory once released."""
    if not hasattr(mmap.mmap, "madvise"):
        pytest.skip("no madvise on this platform")
    rows = np.random.default_rng(0).random((20_000, 1024), dtype=np.float32)  # 82 MB
    np.save(tmp_path / "f.npy", rows)
    features = load_features(tmp_path / "f.npy")
    process = psutil.Process()
    before = process.memory_info().rss
    total = float(features.sum(dtype=np.float64))  # reads every page of the mapping
    touched = process.memory_info().rss
    release(features)
    released = process.memory_info().rss
    assert touched - before > 60 * 2**20
    assert touched - released > 60 * 2**20
    np.testing.assert_array_equal(features[12_345], rows[12_345])  # read back after the release
    assert total == pytest.approx(float(rows.sum(dtype=np.float64)))


def test_rows_of_nothing_are_refused(tmp_path):
    # A header can claim 2**40 rows of width 0 in a file of 128 bytes; the render then tried to schedule them.
    path = tmp_path / "empty-rows.npy"
    with path.open("wb") as file:
        np.lib.format.write_array_header_1_0(file, {"descr": "<f4", "fortran_order": False, "shape": (2**40, 0)})
    with pytest.raises(JobError, match=r"expected 1 to \d+ rows of at least one value"):
        load_features(path)
