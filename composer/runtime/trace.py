"""Span recording: which stage ran on which thread, when, for which frames.

The processor and the reference renderer call :meth:`Tracer.span` around each piece of work; the default
:class:`NullTracer` records nothing and costs next to nothing. A :class:`Tracer` keeps every span in memory
for ``composer profile`` and ``--trace`` (Chrome trace event format, viewable in Perfetto).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Span:
    """One piece of work: ``stage`` on ``thread`` from ``start`` to ``end`` (perf_counter seconds)."""

    stage: str
    thread: str
    start: float
    end: float
    frame: int | None = None  # the output frame, or the first of a batch
    count: int = 1  # frames the span worked on


class NullTracer:
    """Records nothing."""

    enabled = False

    @contextlib.contextmanager
    def span(self, stage: str, frame: int | None = None, count: int = 1) -> Iterator[None]:
        yield

    def add(self, stage: str, start: float, end: float, frame: int | None = None, count: int = 1) -> None:
        pass


class Tracer(NullTracer):
    """Records every span, from any thread."""

    enabled = True

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def span(self, stage: str, frame: int | None = None, count: int = 1) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, start, time.perf_counter(), frame, count)

    def add(self, stage: str, start: float, end: float, frame: int | None = None, count: int = 1) -> None:
        span = Span(stage, threading.current_thread().name, start, end, frame, count)
        with self._lock:
            self.spans.append(span)

    def extend(self, spans: Iterable[Span]) -> None:
        """Add spans recorded elsewhere (another process's render)."""
        with self._lock:
            self.spans.extend(spans)

    def of(self, stage: str) -> list[Span]:
        """The spans of one stage."""
        with self._lock:
            return [s for s in self.spans if s.stage == stage]

    def percentiles_ms(self, stage: str, percents: Sequence[float]) -> tuple[float, ...]:
        """Percentiles of one stage's span lengths in milliseconds (NaN each when it has no spans)."""
        lengths = [1000 * (s.end - s.start) for s in self.of(stage)]
        if not lengths:
            return tuple(math.nan for _ in percents)
        return tuple(float(p) for p in np.percentile(np.asarray(lengths), list(percents)))
