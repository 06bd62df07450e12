"""Measurements in fresh child processes, each answering once through a queue.

A child's body puts exactly one answer: its result, or the text of the error that stopped it. The parent
collects the answers with :func:`collect`, which also notices a child that died without answering (killed,
crashed in native code), so a failed measurement ends the benchmark with one line instead of a hang.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.process
import multiprocessing.queues
import queue
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ChildFailed", "collect", "context", "failure"]


class ChildFailed(Exception):
    """A child failed; the message is its error."""


def context() -> multiprocessing.context.SpawnContext:
    """Spawned children: a fork of a process holding threads and model sessions is not safe."""
    return multiprocessing.get_context("spawn")


def failure(exc: BaseException) -> str:
    """What a child puts instead of a result when ``exc`` stopped it."""
    return f"{type(exc).__name__}: {exc}"


def collect(children: Sequence[multiprocessing.process.BaseProcess], answers: multiprocessing.queues.Queue,
            first: Callable[[list[str]], str] = lambda errors: errors[0]) -> list[Any]:
    """One answer per child, in the order they came; every child is joined (and ended if it still runs).

    Raises:
        ChildFailed: a child answered with an error (``first`` picks which of several to report) or died
            without answering.
    """
    got: list[Any] = []
    try:
        while len(got) < len(children):
            try:
                got.append(answers.get(timeout=1.0))
            except queue.Empty:
                dead = [c for c in children if not c.is_alive() and c.exitcode]
                if dead and answers.empty():
                    raise ChildFailed(
                        f"{dead[0].name} exited with status {dead[0].exitcode} without an answer") from None
    finally:
        for child in children:
            if child.is_alive() and len(got) < len(children):
                child.terminate()
            child.join()
    errors = [a for a in got if isinstance(a, str)]
    if errors:
        raise ChildFailed(first(errors))
    return got
