"""SIGINT and SIGTERM while a command runs: the first one interrupts, the rest stop nothing."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from composer.runtime import signals


@pytest.fixture(autouse=True)
def _handlers_back() -> Iterator[None]:
    """A block that received a signal leaves its handlers installed (its process is on the way out); the tests'
    process gets its own back."""
    previous = {sig: signal.getsignal(sig) for sig in signals.SIGNALS}
    yield
    for sig, action in previous.items():
        signal.signal(sig, action)


def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.01)  # Python runs the handler between two bytecodes of the main thread


def test_only_the_first_of_several_signals_interrupts() -> None:
    interrupts = 0
    with signals.handling_signals():
        try:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
                os.kill(os.getpid(), sig)
            time.sleep(0.05)
        except KeyboardInterrupt:
            interrupts += 1
        for sig in (signal.SIGINT, signal.SIGTERM):  # while the first one is being handled
            _deliver(sig)
    assert interrupts == 1
    # Ignored by the kernel, not by a Python handler: the interpreter's shutdown would put back death by SIGTERM
    # (a burst's last SIGTERM ended a run with status -15 after its "interrupted" message).
    assert all(signal.getsignal(sig) == signal.SIG_IGN for sig in signals.SIGNALS)


def test_a_signal_once_the_work_is_done_stops_nothing() -> None:
    with signals.handling_signals():
        signals.work_done()
        _deliver(signal.SIGTERM)
        assert signals.late_signal()


def test_the_handlers_come_back_after_a_block_without_signals() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with signals.handling_signals():
        assert signal.getsignal(signal.SIGTERM) is not before
        assert not signals.late_signal()
    assert signal.getsignal(signal.SIGTERM) is before
    signals.work_done()  # outside a command: nothing to mark


def test_an_error_raised_because_of_an_interrupt_is_the_interrupt() -> None:
    """ONNX Runtime's C extension turns a Ctrl-C during its import into ``ImportError: initialization failed``."""
    interrupt = KeyboardInterrupt()
    try:
        try:
            raise interrupt
        except KeyboardInterrupt as exc:
            raise ImportError("initialization failed") from exc
    except ImportError as wrapped:
        assert signals.interrupt_behind(wrapped) is interrupt
    assert signals.interrupt_behind(ValueError("no")) is None
