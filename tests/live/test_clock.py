"""The stream's clock, the size-1 slot and the timeline of rows on slots (no waiting on real time)."""

from __future__ import annotations

import threading
from fractions import Fraction

import pytest

from composer.live.clock import Clock, Slot, sleep_until
from composer.live.timeline import Timeline
from composer.runtime.threads import Stopped

P = 0.1  # the period at 10 fps


def _timeline(slack: int = 2) -> Timeline:
    return Timeline(Clock(Fraction(10), latency=0.25), least=0.1, slack=slack)


def test_clock_slots_leave_a_latency_after_the_first_row():
    clock = Clock(Fraction(10), latency=0.25)
    clock.start(100.0)
    assert clock.due(0) == pytest.approx(100.25) and clock.due(7) == pytest.approx(100.95)
    assert [clock.nearest(100.0 + d) for d in (0.0, 0.04, 0.06, 0.31)] == [0, 0, 1, 3]


def test_slot_keeps_the_newest_item_and_returns_the_stale_one():
    slot: Slot[int] = Slot()
    stop = threading.Event()
    assert slot.put(1) is None
    assert slot.put(2) == 1
    assert slot.take(stop) == 2
    slot.put(3)
    slot.close()
    assert slot.take(stop) == 3 and slot.take(stop) is None


def test_slot_take_and_sleep_give_up_when_stopped():
    slot: Slot[int] = Slot()
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        slot.take(stop)
    with pytest.raises(Stopped):
        sleep_until(float("inf"), stop)


def test_drain_empties_the_slot():
    slot: Slot[int] = Slot()
    slot.put(5)
    assert slot.drain() == 5 and slot.drain() is None


def test_rows_at_the_rate_take_one_slot_each():
    timeline = _timeline()
    for row in range(6):
        timeline.place(row, 10.0 + row * P)
    assert [timeline.slot_of(row) for row in range(6)] == list(range(6))
    assert timeline.displaced == 0


def test_a_row_a_little_late_follows_the_row_before_it():
    timeline = _timeline()
    timeline.place(0, 10.0)
    timeline.place(1, 10.0 + 2.4 * P)  # 1.4 periods late, but slot 1 leaves 1.1 periods after it came
    timeline.place(2, 10.0 + 2.0 * P)
    assert [timeline.slot_of(r) for r in range(3)] == [0, 1, 2]


def test_a_row_too_late_for_its_slot_leaves_a_gap_and_the_rows_after_it_follow():
    timeline = _timeline()
    timeline.place(0, 10.0)
    timeline.place(1, 10.0 + 2.8 * P)  # slot 1 leaves 0.7 periods after it came: less than least
    timeline.place(2, 10.0 + 3.0 * P)
    assert [timeline.slot_of(r) for r in range(3)] == [0, 3, 4]
    assert timeline.take(1) is None and timeline.take(2) is None  # idle


def test_a_burst_displaces_rows_so_no_row_leaves_more_than_slack_slots_late():
    timeline = _timeline(slack=2)
    for row in range(10):
        timeline.place(row, 10.0)  # all at once
    placed = {row: timeline.slot_of(row) for row in range(10)}
    assert placed[9] == 2 and timeline.displaced == 7
    assert [r for r, s in placed.items() if s is not None] == [0, 1, 9]


def test_a_pause_leaves_idle_slots():
    timeline = _timeline()
    timeline.place(0, 10.0)
    timeline.place(1, 10.0 + 5 * P)
    assert [timeline.take(k) for k in range(6)] == [0, None, None, None, None, 1]


def test_no_row_goes_on_a_slot_already_written():
    timeline = _timeline()
    timeline.place(0, 10.0)
    assert timeline.take(0) == 0 and timeline.take(1) is None and timeline.take(2) is None
    timeline.place(1, 10.0 + 1 * P)  # meant for slot 1, which is gone
    assert timeline.slot_of(1) == 3


def test_the_stream_is_over_after_the_last_rows_slot_once_the_rows_end():
    timeline = _timeline()
    timeline.place(0, 10.0)
    timeline.place(1, 10.0 + P)
    assert not timeline.over(2)
    timeline.end()
    assert not timeline.over(1) and timeline.over(2)


def test_wait_start_says_whether_a_row_came():
    stop = threading.Event()
    timeline = _timeline()
    timeline.end()
    assert timeline.wait_start(stop) is False
    timeline = _timeline()
    timeline.place(0, 1.0)
    assert timeline.wait_start(stop) is True
