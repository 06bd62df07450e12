"""Thread plumbing shared by the processor's stages: stop-aware waits and a supervisor.

Every blocking call waits in short slices and checks the run's one stop event, so no stage can stay blocked
on a queue or a condition after another stage has failed.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

import cv2

T = TypeVar("T")
POLL = 0.05  # seconds a blocked call waits before it looks at the stop event again
START_GRACE = 0.5  # seconds a thread whose start was interrupted has to show that it runs


class Stopped(Exception):
    """Raised inside a stage when the run's stop event is set; not an error of its own."""


def put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> None:
    """``q.put(item)`` that gives up with :class:`Stopped` once ``stop`` is set."""
    while True:
        if stop.is_set():
            raise Stopped
        try:
            q.put(item, timeout=POLL)
            return
        except queue.Full:
            continue


def get(q: queue.Queue[T], stop: threading.Event) -> T:
    """``q.get()`` that gives up with :class:`Stopped` once ``stop`` is set."""
    while True:
        if stop.is_set():
            raise Stopped
        try:
            return q.get(timeout=POLL)
        except queue.Empty:
            continue


class Pool(Generic[T]):
    """A fixed set of reusable buffers; taking one waits, stop-aware, until one is given back.

    The buffer given back last is taken first. A render then touches only as many buffers as it keeps in flight
    at once, and takes them back while they are still in the cache; the first touch of each page is a page
    fault. Taken in turn, as a FIFO queue did, every buffer of the video encoders' 102-frame pool was faulted
    in: in the heavy model's 400-frame render on the development machine, the writer thread took 85 faults a
    frame and 1.15 ms of system time (≈ 14 us a fault on its VM), against 4-5 faults last-given-first.
    """

    def __init__(self, buffers: list[T]) -> None:
        self._free: queue.LifoQueue[T] = queue.LifoQueue()
        for buffer in buffers:
            self._free.put(buffer)

    def take(self, stop: threading.Event) -> T:
        """The buffer given back last; raises :class:`Stopped` once ``stop`` is set."""
        return get(self._free, stop)

    def give(self, buffer: T) -> None:
        self._free.put(buffer)


def wait_for(cond: threading.Condition, predicate: Callable[[], T | None], stop: threading.Event,
             poll: float = POLL) -> T:
    """``cond.wait_for(predicate)`` (``cond`` held) that gives up with :class:`Stopped` once ``stop`` is set;
    returns the predicate's first true value. ``poll``: seconds between looks when nobody notifies ``cond``."""
    while not (value := predicate()):
        if stop.is_set():
            raise Stopped
        cond.wait(poll)
    return value


class Supervisor:
    """Runs stage threads; the first exception sets the stop event and is re-raised after all are joined.

    Args:
        run: the supervisor of the whole run, when this one runs only some of its threads (a sink's encoders
            beside the processor's stages): the two share the stop event and the first error, so a failure on
            any thread stops every one, and each join re-raises the run's first error. Each joins only the
            threads it started.
    """

    def __init__(self, run: Supervisor | None = None) -> None:
        self.stop: threading.Event = run.stop if run is not None else threading.Event()
        self._errors: list[BaseException] = run._errors if run is not None else []
        self._lock: threading.Lock = run._lock if run is not None else threading.Lock()
        self._threads: list[tuple[threading.Thread, threading.Event]] = []  # each thread and its "done" event

    def fail(self, exc: BaseException) -> None:
        """Record ``exc`` (the first one wins) and stop every stage."""
        if isinstance(exc, Stopped):
            return
        with self._lock:
            self._errors.append(exc)
        self.stop.set()

    def spawn(self, name: str, target: Callable[[], None]) -> None:
        """Start ``target`` on a daemon thread whose exceptions go to :meth:`fail`."""
        done = threading.Event()

        def body() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - every failure must reach the caller
                self.fail(exc)
            finally:
                done.set()

        thread = threading.Thread(target=body, name=f"composer-{name}", daemon=True)
        self._threads.append((thread, done))
        try:
            thread.start()
        except BaseException:
            if not _began(thread):
                self._threads.remove((thread, done))  # Ctrl-C came before the thread was made: nothing to join
            raise

    def join(self) -> None:
        """Wait for every thread this supervisor started; on Ctrl-C stop them all first. Re-raise the run's first
        recorded error.

        It waits on each thread's own "done" event, not on ``Thread.join`` with a timeout: in Python 3.11 a
        KeyboardInterrupt that lands inside such a join marks the thread as stopped while it still runs
        (``_wait_for_tstate_lock`` releases the thread's own lock), every later join returns at once, and the
        interpreter could exit under a thread that was still inside OpenCV, which aborts the process
        ("terminate called without an active exception"). A KeyboardInterrupt while it waits stops the run and
        the wait goes on, however many come: it returns only once every thread has ended.
        """
        for _, done in self._threads:
            while True:
                try:
                    while not done.wait(POLL):
                        pass
                    break
                except KeyboardInterrupt as exc:
                    self.fail(exc)
        for thread, _ in self._threads:
            thread.join()  # past its target already: only the thread's own exit is left
        if self._errors:
            raise self._errors[0]

    def __enter__(self) -> Supervisor:
        """A block that spawns stage threads: at its end they are joined, and stopped first if it raised."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self.fail(exc)  # a block cut short (an error, Ctrl-C between two spawns) stops what it started
        self.join()


def _began(thread: threading.Thread) -> bool:
    """Whether a thread whose ``start`` was cut short by Ctrl-C runs: one that was made takes its ident within
    moments; one whose start was interrupted before it was made never does."""
    deadline = time.monotonic() + START_GRACE
    while thread.ident is None and time.monotonic() < deadline:
        time.sleep(POLL / 10)
    return thread.ident is not None


@contextlib.contextmanager
def one_opencv_thread() -> Iterator[None]:
    """Run OpenCV single-threaded inside the block.

    The composite workers already share the cores; OpenCV's own pool on top of them only oversubscribes, and
    a stage measured alone should not hide work on other threads.
    """
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)
