"""Measurements in fresh child processes, each answering once through a queue (the benchmarks, ``composer
sweep`` and the processor's run in ``composer profile``).

A child's body puts exactly one answer: its result, or the text of the error that stopped it. The parent
collects the answers with :func:`collect`, which also notices a child that died without answering (killed,
crashed in native code), so a failed measurement ends with one line instead of a hang.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import multiprocessing.queues
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from composer.errors import ComposerError

if TYPE_CHECKING:
    from composer.config.job import Job
    from composer.rendering.observer import RenderStats
    from composer.runtime.trace import Tracer

__all__ = ["ChildFailed", "Failure", "collect", "context", "failure", "render_fresh", "rotated", "run_child"]

T = TypeVar("T")


class ChildFailed(ComposerError):
    """A child failed; the message is its error, the exit status the one composer gives that error."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Failure:
    """What a child answers instead of a result: its error's one line and exit status."""

    text: str
    exit_code: int = 1


def context() -> multiprocessing.context.SpawnContext:
    """Spawned children: a fork of a process holding threads and model sessions is not safe."""
    return multiprocessing.get_context("spawn")


def failure(exc: BaseException) -> Failure:
    """What a child puts instead of a result when ``exc`` stopped it: composer's own errors keep their message
    and exit status, as the CLI would report them; anything else is named by its type."""
    if isinstance(exc, ComposerError):
        return Failure(str(exc), exc.exit_code)
    return Failure(f"{type(exc).__name__}: {exc}")


def collect(children: Sequence[multiprocessing.process.BaseProcess], answers: multiprocessing.queues.Queue,
            first: Callable[[list[Failure]], Failure] = lambda errors: errors[0]) -> list[Any]:
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
    errors = [a for a in got if isinstance(a, Failure)]
    if errors:
        error = first(errors)
        raise ChildFailed(error.text, error.exit_code)
    return got


def run_child(target: Callable[..., None], args: tuple[Any, ...], name: str) -> Any:
    """Run ``target(*args, answers)`` in a fresh process and return the one answer it puts.

    Raises:
        ChildFailed: the child answered with a :class:`Failure` or died without answering.
    """
    ctx = context()
    answers = ctx.Queue()
    child = ctx.Process(target=target, args=(*args, answers), name=name)
    child.start()
    [answer] = collect([child], answers)
    return answer


def rotated(items: Sequence[T], round_: int) -> list[T]:
    """The order of round ``round_``: ``items`` starting ``round_`` places along, wrapping round.

    Measurements taken in rounds start each round one item further along, so that no item always goes first
    and the luck of a position is not read as the item's speed.
    """
    k = round_ % len(items) if items else 0
    return [*items[k:], *items[:k]]


def render_fresh(job: Job, tracer: Tracer | None = None, name: str = "render") -> RenderStats:
    """:func:`composer.rendering.pipeline.render` of ``job`` in a fresh process, as a user's render runs.

    A render that follows other work in the same process finds the memory that work left (pages already
    faulted in, or an allocator's heap shaped by it), and its peak RSS includes that work's leftovers; every
    measured render runs on its own. The child's spans are added to ``tracer``; its log lines go out at the
    level of this process's ``composer`` logger.

    Raises:
        ChildFailed: the render failed (its one-line message and exit status) or its process died.
    """
    level = logging.getLogger("composer").getEffectiveLevel()
    stats, spans = run_child(_render, (job, level, tracer is not None), name)
    if tracer is not None:
        tracer.extend(spans)
    return stats


def _render(job: Job, level: int, traced: bool, answers: multiprocessing.queues.Queue) -> None:
    """:func:`render_fresh`'s child: answers the render's stats and spans, or the error that stopped it."""
    try:
        from composer.rendering.render import render
        from composer.runtime.trace import NullTracer, Tracer

        logging.basicConfig(format="composer: %(message)s")
        logging.getLogger("composer").setLevel(level)
        tracer = Tracer() if traced else NullTracer()
        stats = render(job, tracer=tracer)
        answers.put((stats, tracer.spans if isinstance(tracer, Tracer) else []))
    except BaseException as exc:  # noqa: BLE001 - the parent reports it as one line
        answers.put(failure(exc))
