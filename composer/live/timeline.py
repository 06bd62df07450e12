"""Rows placed on the stream's slots: which slot of the stream shows which row.

Rows follow each other slot by slot: a row goes on the slot after the previous row's as long as that slot leaves
at least ``least`` seconds after the row arrived (the time the renderer needs). So a row that comes a little late
(jitter) neither leaves a gap nor moves the rows after it. A row too late for that (the producer paused, or is
slower than the stream) goes on the slot nearest to its arrival plus the clock's latency instead, and the slots
skipped are idle: the template's own frame fills them. A producer faster than the stream would push rows ever
later; once a row would leave more than ``slack`` slots after the one nearest to its arrival, it takes the
previous row's slot instead and that row is dropped (displaced), which keeps the latency bounded.
"""

from __future__ import annotations

import threading

from composer.live.clock import Clock
from composer.runtime.threads import wait_for

SLACK = 2  # slots a row may leave after the one meant for it before it displaces the row ahead of it


class Timeline:
    """Rows on slots. The reader places rows, the renderer asks where a row goes, the writer takes each slot.

    Args:
        clock: the stream's clock; started by the first row placed.
        least: seconds a row's slot must leave after the row arrived for the row to follow the previous one.
        slack: see the module's docstring.
    """

    def __init__(self, clock: Clock, least: float = 0.0, slack: int = SLACK) -> None:
        self.clock, self.least, self.slack = clock, least, slack
        self._cond = threading.Condition()
        self._row_at: dict[int, int] = {}  # slot -> row, for slots not yet written
        self._slot_of: dict[int, int] = {}  # row -> slot, for rows not yet written
        self._next = 0  # the first slot after the row placed last
        self._open = 0  # the first slot not yet written
        self._last: tuple[int, int] | None = None  # (row, slot) of the row placed last
        self.rows = 0  # rows placed
        self.displaced = 0  # rows that lost their slot to a newer row
        self.ended = False

    def place(self, row: int, arrival: float) -> None:
        """Put row ``row``, which arrived at ``arrival``, on its slot (the first row starts the clock)."""
        with self._cond:
            if self.clock.origin is None:
                self.clock.start(arrival)
            nearest = self.clock.nearest(arrival)
            slot = max(self._next, self._open)
            if self.clock.due(slot) < arrival + self.least:
                slot = max(slot, nearest)  # too late to follow the row before: a gap of idle slots
            elif slot - nearest > self.slack and self._last is not None and self._last[1] >= self._open:
                behind, slot = self._last
                del self._slot_of[behind]
                self.displaced += 1
            self._row_at[slot], self._slot_of[row] = row, slot
            self._last, self._next = (row, slot), slot + 1
            self.rows += 1
            self._cond.notify_all()

    def slot_of(self, row: int) -> int | None:
        """The slot row ``row`` leaves in; None once it was displaced or its slot was written."""
        with self._cond:
            return self._slot_of.get(row)

    def take(self, slot: int) -> int | None:
        """The row slot ``slot`` shows (None: idle); from now on no row is placed on it or before it."""
        with self._cond:
            self._open = max(self._open, slot + 1)
            row = self._row_at.pop(slot, None)
            if row is not None:
                self._slot_of.pop(row, None)
            return row

    def end(self) -> None:
        """No more rows will come."""
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    def wait_start(self, stop: threading.Event) -> bool:
        """Wait for the first row (True) or the end of the rows before any came (False); stop-aware."""
        with self._cond:
            wait_for(self._cond, lambda: self.clock.origin is not None or self.ended, stop)
            return self.clock.origin is not None

    def over(self, slot: int) -> bool:
        """Whether the stream ends before slot ``slot``: the rows have ended and every placed row's slot is past."""
        with self._cond:
            return self.ended and (self._last is None or slot > self._last[1])
