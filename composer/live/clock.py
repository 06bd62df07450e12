"""The stream's clock and the size-1 slot between the reader and the renderer (seed 004's drop-newest)."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from typing import Generic, TypeVar

from composer.runtime.threads import Stopped, wait_for

T = TypeVar("T")


def now() -> float:
    """The live room's time: ``time.perf_counter`` seconds, the trace's time too."""
    return time.perf_counter()


class Clock:
    """Slot ``k`` of the stream leaves at ``origin + latency + k / fps``.

    ``origin`` is the arrival of the first row, whose frame leaves in slot 0, ``latency`` later; the slot nearest to
    ``a - origin`` leaves about ``latency`` after ``a`` (within half a frame period either way).

    Args:
        fps: the stream's frame rate.
        latency: seconds between a row's arrival and its frame's slot: the renderer's budget for one frame.
    """

    def __init__(self, fps: Fraction, latency: float) -> None:
        self.fps, self.latency = fps, latency
        self.period = float(1 / fps)
        self.origin: float | None = None

    def start(self, origin: float) -> None:
        """Set the time of slot 0's row (the first row's arrival)."""
        self.origin = origin

    def due(self, slot: int) -> float:
        """When slot ``slot`` leaves."""
        assert self.origin is not None, "the clock starts with the first row"
        return self.origin + self.latency + slot * self.period

    def nearest(self, arrival: float) -> int:
        """The slot that leaves nearest to ``latency`` after ``arrival``."""
        assert self.origin is not None, "the clock starts with the first row"
        return max(0, round((arrival - self.origin) / self.period))


def sleep_until(moment: float, stop: threading.Event) -> None:
    """Wait until ``moment`` (:func:`now` seconds); raises :class:`Stopped` as soon as ``stop`` is set."""
    while (left := moment - now()) > 0:
        if stop.wait(left):
            raise Stopped
    if stop.is_set():
        raise Stopped


class Slot(Generic[T]):
    """A size-1 hand-over where the newest item wins: putting replaces an item not yet taken (which is returned,
    so the caller can count it as dropped). A live renderer that falls behind thus always takes the freshest row
    instead of working through a backlog that only adds latency."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False

    def put(self, item: T) -> T | None:
        """Offer ``item``; returns the stale item it replaced, if any."""
        with self._cond:
            stale, self._item = self._item, item
            self._cond.notify()
            return stale

    def take(self, stop: threading.Event) -> T | None:
        """The item, once there is one; None once the slot is closed and empty. Raises :class:`Stopped`."""
        with self._cond:
            wait_for(self._cond, lambda: self._item is not None or self._closed, stop)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """No more items: a waiting :meth:`take` returns what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def drain(self) -> T | None:
        """Empty the slot; returns what it held."""
        with self._cond:
            item, self._item = self._item, None
            return item
