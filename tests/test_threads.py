"""The stop-aware plumbing shared by the processor's stages: the buffer pool."""

from __future__ import annotations

import threading
import time

import pytest

from composer.threads import POLL, Pool, Stopped


def test_pool_hands_back_the_buffer_given_last() -> None:
    stop = threading.Event()
    a, b, c = bytearray(1), bytearray(1), bytearray(1)
    pool = Pool([a, b, c])
    taken = pool.take(stop)
    assert taken is c
    pool.give(taken)
    assert pool.take(stop) is c  # the warm buffer again, not a, which was never taken
    assert pool.take(stop) is b
    pool.give(b)
    pool.give(c)
    assert [pool.take(stop) for _ in range(3)] == [c, b, a]


def test_pool_take_waits_for_a_buffer_given_from_another_thread() -> None:
    stop = threading.Event()
    pool: Pool[str] = Pool([])
    timer = threading.Timer(2 * POLL, pool.give, args=("frame",))
    timer.start()
    try:
        assert pool.take(stop) == "frame"
    finally:
        timer.cancel()


def test_pool_take_gives_up_promptly_when_the_run_stops() -> None:
    stop = threading.Event()
    pool: Pool[str] = Pool([])
    timer = threading.Timer(2 * POLL, stop.set)
    timer.start()
    began = time.monotonic()
    with pytest.raises(Stopped):
        pool.take(stop)
    assert time.monotonic() - began < 2.0  # a few polls, not a hang
