"""Ctrl-C and SIGTERM while a command runs: the first one stops the work, every later one waits for it to stop.

The first SIGINT or SIGTERM raises :class:`KeyboardInterrupt` on the main thread, where the renderers stop every
stage, join its thread and keep the finished work. Every later one is ignored: a second KeyboardInterrupt raised
while the first is being handled cut the stages' joins short, and the interpreter then exited under a thread
still inside OpenCV, ONNX Runtime or x264, which aborts the process ("terminate called without an active
exception"; two or three Ctrl-C within 10 ms did so in 4 of 9 tries). Once the outputs are complete
(:func:`work_done`) a signal stops nothing any more: it is noted, and the command ends as it would have.

Only the command line installs the handlers (:func:`handling_signals`); the library calls :func:`work_done`,
which does nothing when they are not installed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Handler:
    """The state of one command's handling: whether a signal came, and whether the work was already done."""

    def __init__(self) -> None:
        self._first = threading.Lock()  # taken, atomically, by the first signal
        self.received = False
        self.done = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        # The lock, not a flag: the handler may run again inside itself, between any two of its bytecodes.
        if not self._first.acquire(blocking=False):
            return
        self.received = True
        if not self.done:
            raise KeyboardInterrupt


_handler: _Handler | None = None  # the installed handler, while a command runs


@contextlib.contextmanager
def handling_signals() -> Iterator[None]:
    """Inside the block, SIGINT and SIGTERM raise KeyboardInterrupt once (the first of them), on the main thread.

    The previous handlers come back at the end, unless a signal came: the process is then on its way out, and
    both are left ignored by the kernel, since the interpreter's shutdown would put back death by the signal
    in place of a Python handler. (Not from the handler itself: a second signal already pending when the first
    one's handler ignored them was reported as "Signal 15 ignored due to race condition".) Off the main thread
    the block changes nothing.
    """
    global _handler
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler, outer = _Handler(), _handler
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    _handler = handler
    try:
        yield
    finally:
        _handler = outer
        handler.done = True  # the command is over: a signal from now on stops nothing
        for sig in SIGNALS:
            signal.signal(sig, handler)  # which hands it any signal still pending
        for sig, action in previous.items():
            signal.signal(sig, signal.SIG_IGN if handler.received else action)


def work_done() -> None:
    """The outputs are complete: a signal from now on stops nothing (the command ends as it would have)."""
    if _handler is not None:
        _handler.done = True


def late_signal() -> bool:
    """Whether a signal came after :func:`work_done`, and so stopped nothing."""
    return _handler is not None and _handler.received and _handler.done


def interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt ``exc`` is, or was raised because of: Ctrl-C inside a C extension's import turns
    into ``ImportError: initialization failed`` (ONNX Runtime's), and other libraries wrap it in their errors;
    such an error is the interrupt, not a failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
