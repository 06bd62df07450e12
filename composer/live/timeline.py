"""Rows placed on the stream's slots: which slot of the stream shows which row.

A row arriving at ``a`` is meant for the slot nearest to it on the clock (:meth:`Clock.nearest`), so it leaves
about the clock's latency after it arrived; a row never shares a slot with the row before it, so jitter in the
arrivals moves a row to the next slot rather than dropping one. A producer faster than the stream would push rows
ever later; once a row would leave more than ``slack`` slots after the slot meant for it, it takes the previous
row's slot instead and that row is dropped (displaced), which keeps the latency bounded. Slots that no row is
placed on are idle: the template's own frame fills them.
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
        slack: see the module's docstring.
    """

    def __init__(self, clock: Clock, slack: int = SLACK) -> None:
        self.clock, self.slack = clock, slack
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
            meant = self.clock.nearest(arrival)
            slot = max(meant, self._next, self._open)
            if slot - meant > self.slack and self._last is not None and self._last[1] >= self._open:
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
