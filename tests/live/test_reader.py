"""Rows read from a descriptor: order, values, malformed rows, stopping; the window of rows read so far."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from composer.errors import JobError
from composer.inputs.features import feature_window
from composer.live.reader import RowHistory, RowReader
from composer.runtime.threads import Stopped


def _read(data: bytes, shape=(2, 3)) -> list[tuple[int, np.ndarray]]:
    read, write = os.pipe()
    got: list[tuple[int, np.ndarray]] = []
    try:
        os.write(write, data)
        os.close(write)
        RowReader(read, shape, lambda i, row, t: got.append((i, row))).run(threading.Event())
    finally:
        os.close(read)
    return got


def test_rows_arrive_in_order_with_their_values():
    rows = np.arange(24, dtype="<f4").reshape(4, 2, 3)
    got = _read(rows.tobytes())
    assert [i for i, _ in got] == [0, 1, 2, 3]
    assert all(np.array_equal(row, rows[i]) and row.dtype == np.float32 for i, row in got)


def test_a_partial_row_at_the_end_is_named():
    with pytest.raises(JobError, match=r"standard input: row 2 is cut short: the input ended after 5 of its 24"):
        _read(np.zeros((2, 2, 3), "<f4").tobytes() + b"\0" * 5)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_row_that_is_not_finite_is_named(value):
    rows = np.zeros((3, 2, 3), "<f4")
    rows[1, 1, 2] = value
    with pytest.raises(JobError, match=r"row 1 holds NaN or infinite values"):
        _read(rows.tobytes())


def test_no_rows_is_no_error():
    assert _read(b"") == []


def test_the_reader_stops_while_no_byte_comes():
    read, write = os.pipe()
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            RowReader(read, (1,), lambda *a: None).run(stop)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    stop.set()
    thread.join(timeout=10)
    os.close(read)
    os.close(write)
    assert not thread.is_alive() and isinstance(errors[0], Stopped)


def test_the_window_holds_rows_up_to_the_frame_and_zeros_after_it():
    rows = np.arange(1, 11, dtype=np.float32).reshape(10, 1)
    history = RowHistory((1,), keep=64)
    for i, row in enumerate(rows):
        history.add(i, row)  # all read, even those after the frame
    for i in range(10):
        known = np.where(np.arange(10)[:, None] <= i, rows, 0)
        assert np.array_equal(history.window(i, 4), feature_window(known, i, 4))


def test_the_history_forgets_old_rows():
    history = RowHistory((1,), keep=3)
    for i in range(10):
        history.add(i, np.ones(1, np.float32))
    assert history.window(9, 8)[:, 0].tolist() == [0, 0, 1, 1, 1, 0, 0, 0]  # rows 5-6 forgotten, 10-12 to come
