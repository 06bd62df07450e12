"""Feature rows read from a file descriptor (standard input), checked, and kept for the windows.

Rows are raw little-endian float32, one after another, each ``row_shape`` values; nothing frames them but their
size. A row is the unit of everything downstream: its index is the output frame's index, its arrival time the
start of that frame's latency.
"""

from __future__ import annotations

import math
import os
import select
import threading
from collections.abc import Callable

import numpy as np

from composer.errors import JobError
from composer.inputs.features import feature_window
from composer.live.clock import now
from composer.runtime.threads import POLL, Stopped

_READ = 1 << 16  # bytes asked of the descriptor at a time


class RowHistory:
    """The rows most recently read, for the model's windows (docs/design.md 3.6) while the stream runs.

    Keeps the last ``keep`` rows, enough for every row still on its way to the stream: a row older than that has
    missed its slot anyway.
    """

    def __init__(self, row_shape: tuple[int, ...], keep: int) -> None:
        self.row_shape, self.keep = row_shape, keep
        self._lock = threading.Lock()
        self._rows: dict[int, np.ndarray] = {}

    def add(self, index: int, row: np.ndarray) -> None:
        with self._lock:
            self._rows[index] = row
            self._rows.pop(index - self.keep, None)

    def window(self, i: int, window: int) -> np.ndarray:
        """Output frame ``i``'s window: rows ``i - window // 2`` onwards, zeros before row 0 and after row ``i``.

        Rows after ``i`` count as not yet arrived, whether or not they have by now: frame ``i`` is the frame of the
        moment row ``i`` came (waiting for later rows would add half a window of latency), and its pixels do not
        depend on how far the reader has got.
        """
        lo = max(0, i - window // 2)
        with self._lock:
            rows = [self._rows.get(k) for k in range(lo, i + 1)]
        block = np.zeros((len(rows), *self.row_shape), np.float32)
        for k, row in enumerate(rows):
            if row is not None:
                block[k] = row
        return feature_window(block, i - lo, window)


class RowReader:
    """Reads rows from ``fd`` until its end, handing each to ``deliver(index, row, arrival)``.

    The descriptor is polled, so the reader notices the stop event within :data:`POLL` seconds even while no
    byte comes (a silent producer, Ctrl-C).

    Args:
        fd: the descriptor (0 for standard input); left open.
        row_shape: the shape of one row.
        deliver: called on the reader's thread for each row, in order.
        name: what messages call the input.
    """

    def __init__(self, fd: int, row_shape: tuple[int, ...], deliver: Callable[[int, np.ndarray, float], None],
                 name: str = "standard input") -> None:
        self.fd, self.row_shape, self.deliver, self.name = fd, row_shape, deliver, name
        self.row_bytes = 4 * math.prod(row_shape)
        self.rows = 0

    def run(self, stop: threading.Event) -> None:
        """Read to the end of the input.

        Raises:
            JobError: a row holds NaN or an infinite value, or the input ends inside a row; names the row.
            Stopped: ``stop`` was set.
        """
        pending = bytearray()
        while True:
            if stop.is_set():
                raise Stopped
            ready, _, _ = select.select([self.fd], [], [], POLL)
            if not ready:
                continue
            chunk = os.read(self.fd, max(_READ, self.row_bytes - len(pending)))
            arrival = now()
            if not chunk:
                if pending:
                    raise JobError(f"{self.name}: row {self.rows} is cut short: the input ended after "
                                   f"{len(pending)} of its {self.row_bytes} bytes")
                return
            pending += chunk
            whole = len(pending) // self.row_bytes * self.row_bytes
            if whole:
                rows = np.frombuffer(bytes(pending[:whole]), "<f4").reshape(-1, *self.row_shape)
                del pending[:whole]
                for row in rows:
                    self._check(row)
                    self.deliver(self.rows, row.astype(np.float32), arrival)
                    self.rows += 1

    def _check(self, row: np.ndarray) -> None:
        if not np.isfinite(row).all():
            raise JobError(f"{self.name}: row {self.rows} holds NaN or infinite values")
