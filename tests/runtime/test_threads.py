"""The stop-aware plumbing shared by the processor's stages: the buffer pool."""

from __future__ import annotations

import queue
import signal
import threading
import time

import pytest

from composer.runtime.threads import POLL, Pool, Stopped


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


def test_supervisors_of_one_run_share_its_stop_and_its_first_error() -> None:
    """A failure on a thread of one supervisor stops the other's threads, and both joins raise it."""
    from composer.runtime.threads import Supervisor, get

    run = Supervisor()
    stages, sink = Supervisor(run), Supervisor(run)
    idle: queue.Queue[object] = queue.Queue()
    stages.spawn("waiting", lambda: get(idle, stages.stop))  # would wait forever for an item

    def fail() -> None:
        raise RuntimeError("the audio broke")

    sink.spawn("failing", fail)
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="the audio broke"):
        stages.join()
    assert time.monotonic() - began < 2.0
    with pytest.raises(RuntimeError, match="the audio broke"):
        sink.join()
    assert not Supervisor().stop.is_set()  # a supervisor of its own has its own stop event


def test_ctrl_c_during_join_waits_for_every_thread_to_finish() -> None:
    """Ctrl-C while the caller waits stops the threads and returns only once each has left its work.

    In Python 3.11 an interrupted ``Thread.join`` marks a running thread as stopped; a supervisor that relied on
    it returned while a thread was still working, and the interpreter could exit under it (an abort when that
    thread was inside OpenCV).
    """
    import _thread

    from composer.runtime.threads import Supervisor

    supervisor = Supervisor()
    finished = threading.Event()

    def work() -> None:
        supervisor.stop.wait()
        time.sleep(0.3)  # the call it was in when the run stopped
        finished.set()

    # interrupt_main does nothing while SIGINT is ignored, as it is in a job that a shell started in the
    # background (`pytest &`, some CI runners): Ctrl-C raises KeyboardInterrupt here as in a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        supervisor.spawn("work", work)
        threading.Timer(0.2, _thread.interrupt_main).start()
        with pytest.raises(KeyboardInterrupt):
            supervisor.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert finished.is_set(), "join returned while a thread was still working"


def test_join_outlasts_a_burst_of_ctrl_c() -> None:
    """Three SIGINTs within 10 ms while the caller waits: the first stops the run, the others do not cut the wait
    short. Before, the second one escaped from the wait for the stopping threads, and the process could exit
    under a thread still in native code ("terminate called without an active exception")."""
    import os
    import signal

    from composer.runtime.threads import Supervisor

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT does not raise KeyboardInterrupt in this process")
    supervisor = Supervisor()
    finished, sent = threading.Event(), threading.Event()

    def work() -> None:
        supervisor.stop.wait()
        sent.wait(5)  # however slowly the machine sends them, the burst lands while the caller waits
        time.sleep(0.3)  # the call it was in when the run stopped
        finished.set()

    def burst() -> None:
        time.sleep(0.1)
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.004)
        sent.set()

    supervisor.spawn("work", work)
    sender = threading.Thread(target=burst)
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        supervisor.join()
    sender.join()
    assert finished.is_set(), "join returned while a thread was still working"


def test_a_block_of_spawns_cut_short_stops_and_joins_what_it_started() -> None:
    """Ctrl-C (or an error) between two spawns: the threads already started are stopped and joined, not left
    running after the caller has moved on."""
    from composer.runtime.threads import Supervisor

    supervisor = Supervisor()
    ended: list[str] = []

    def work() -> None:
        supervisor.stop.wait()
        time.sleep(0.05)
        ended.append("work")

    with pytest.raises(KeyboardInterrupt):
        with supervisor:
            supervisor.spawn("work", work)
            raise KeyboardInterrupt
    assert ended == ["work"]
