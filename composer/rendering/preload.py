"""The chunked preloader: template frames and their crops cached in preallocated RAM (docs/design.md section 4).

The template is cut into chunks of ``size`` consecutive frames. The output frames, in order, visit chunks
(a ping-pong schedule runs through them forwards, then backwards); each visit is decoded sequentially into one
of two slots while the other slot is being rendered, so decoding overlaps rendering and memory holds at most
two chunks. When the whole template fits, there is one slot, one visit and nothing is decoded twice.

A slot keeps the decoder's own arrays rather than copying them into a block allocated up front: PyAV
converts every frame into a freshly allocated array anyway, so a copy would page in and write every cached
byte twice. Decoding 100 frames of the 1280x720 benchmark template into a block took 117,000 page faults and
650 ms on the development machine; keeping the arrays took 72,000 and 500-540 ms.

A slot is refilled only after the renderer has released every output frame of the visit that used it.
"""

from __future__ import annotations

import functools
import math
import mmap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from composer.config.job import ModelSpec
from composer.errors import SourceError, StageError
from composer.inputs.rects import Rects
from composer.inputs.sources import TemplateSource
from composer.rendering.prepare import crop_region
from composer.runtime.threads import Stopped, wait_for
from composer.runtime.trace import NullTracer


@dataclass(frozen=True)
class Visit:
    """Output frames ``first .. stop-1`` all use template frames of chunk ``chunk``."""

    chunk: int
    first: int
    stop: int


@dataclass(frozen=True)
class Chunk:
    """A cached run of template frames ``start .. start + len(frames) - 1`` and their crops."""

    start: int
    frames: list[np.ndarray | None]  # [H, W, 3] uint8 each, None until decoded; may be longer than the chunk
    crops: np.ndarray  # [n, crop, crop, 3] uint8; rows of frames without a rectangle are unused


def small_pages(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised uint8 array of ``shape`` on an anonymous mapping of its own, in 4 KiB pages (the
    cache's crops; the figures below were measured when the frames lived in such a block too).

    numpy asks for transparent huge pages for arrays of 4 MiB and more. Where the kernel has no free 2 MiB
    page at hand, it compacts memory on the first touch of each one, on the preloader's thread, which is the
    render's critical path while the first chunk decodes: filling a fresh 690 MB array took 0.85-1.9 s of
    system time on the development machine, in 4 KiB pages 0.25-0.4 s, and the light benchmark model's
    200-frame render went from 106 to 143 fps (fresh processes, 4 runs each). The mapping is private: Python's
    anonymous ``mmap`` is shared by default, and the kernel backs shared memory with shmem, whose page faults
    cost more (clearing its pages was 9% of that render's samples in ``perf``, 4% when private). The mapping
    is released when the last array on it goes.
    """
    size = math.prod(shape)
    if size == 0:
        return np.empty(shape, np.uint8)
    if hasattr(mmap, "MAP_PRIVATE"):  # Unix: private, not shared memory, whose faults cost more
        block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    else:
        block = mmap.mmap(-1, size)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):  # Linux; elsewhere the system's default pages
        block.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(block, np.uint8).reshape(shape)


def chunk_size(budget: int, per_frame: int, frames: int) -> int:
    """Template frames per chunk for a cache of ``budget`` bytes.

    The whole template when it fits; otherwise half the budget per slot, since two slots are alive while
    the next chunk decodes.
    """
    if frames * per_frame <= budget:
        return frames
    return max(1, min(frames, budget // (2 * per_frame)))


def plan_visits(schedule: np.ndarray, size: int, start: int = 0) -> list[Visit]:
    """Cut output frames ``start ..`` into runs that use one chunk each."""
    chunks = schedule[start:] // size
    if len(chunks) == 0:
        return []
    starts = np.concatenate(([0], np.flatnonzero(np.diff(chunks)) + 1))
    stops = np.concatenate((starts[1:], [len(chunks)]))
    return [Visit(int(chunks[a]), start + int(a), start + int(b)) for a, b in zip(starts, stops)]


class Preloader:
    """Fills chunk slots ahead of the renderer, on its own thread.

    Args:
        source: the template.
        rects: its rectangles.
        spec: the model section (crop size and interpolation).
        size: template frames per chunk.
        visits: the chunk visits of the job, in output order.
        stop: the run's stop event.
    """

    def __init__(self, source: TemplateSource, rects: Rects, spec: ModelSpec, size: int,
                 visits: list[Visit], stop: threading.Event, tracer: NullTracer | None = None) -> None:
        self.source, self.rects, self.spec = source, rects, spec
        self.tracer = tracer or NullTracer()
        self.size, self.visits, self.stop = size, visits, stop
        slots = 1 if size >= source.count else 2
        self._frames: list[list[np.ndarray | None]] = [[None] * size for _ in range(slots)]
        self._crops = [small_pages((size, spec.crop, spec.crop, 3)) for _ in range(slots)]
        self._held: list[int | None] = [None] * slots  # chunk index each slot holds
        self._position, self._doing = 0, "decode"  # where the preloader is, for error messages
        self._ready = -1  # visits 0 .. _ready are loaded
        self._filling = -1  # the visit being loaded, and how many of its frames are in: rendering starts
        self._loaded = 0  # with the first frame instead of waiting for the whole chunk
        self._released = -1  # visits 0 .. _released are no longer used
        self._cond = threading.Condition()

    def _slot(self, v: int) -> int:
        return v % len(self._frames)

    def _free_for(self, v: int) -> bool:
        """Visit ``v``'s slot is no longer used by the visit that held it before."""
        return self._released >= v - len(self._frames)

    def run(self) -> None:
        """Thread body: load every visit's chunk in order, each once its slot is free."""
        for v, visit in enumerate(self.visits):
            with self._cond:
                wait_for(self._cond, functools.partial(self._free_for, v), self.stop)
            slot = self._slot(v)
            if self._held[slot] != visit.chunk:
                self._held[slot] = None
                self._frames[slot][:] = [None] * self.size  # the old chunk's frames go before the new ones come
                with self._cond:
                    self._filling, self._loaded = v, 0
                    self._cond.notify_all()
                self._fill(slot, visit.chunk)
                self._held[slot] = visit.chunk
            with self._cond:
                self._ready = v
                self._cond.notify_all()

    def _fill(self, slot: int, chunk: int) -> None:
        start = chunk * self.size
        stop = min(start + self.size, self.source.count)
        frames, crops = self._frames[slot], self._crops[slot]
        decoded = self.source.frames(start, stop)
        try:
            self._fill_from(decoded, frames, crops, start)
        except (Stopped, StageError):
            raise
        except Exception as exc:
            raise StageError(self._doing, f"template frame {self._position}", exc) from exc
        if self._position != stop:
            raise StageError("decode", f"template frame {self._position}", SourceError(
                f"{self.source.path}: the template ended early ({self._position} of {stop} frames)"))

    def _fill_from(self, decoded: Iterator[np.ndarray], frames: list[np.ndarray | None], crops: np.ndarray,
                   start: int) -> None:
        t = self._position = start
        while True:
            self._doing = "decode"
            began = time.perf_counter()
            frame = next(decoded, None)
            if frame is None:
                break
            frames[t - start] = frame
            self.tracer.add("decode", began, time.perf_counter(), t)
            if self.stop.is_set():
                raise Stopped
            rect = self.rects.get(t)
            if rect is not None:
                self._doing = "prepare"
                with self.tracer.span("crop", t):
                    crop_region(frame, rect, self.spec, out=crops[t - start])
            t = self._position = t + 1
            with self._cond:
                self._loaded = t - start
                self._cond.notify_all()

    def acquire(self, v: int) -> Chunk:
        """Wait until visit ``v``'s chunk is being loaded and return it; see :meth:`loaded`."""
        with self._cond:
            wait_for(self._cond, lambda: self._ready >= v or self._filling == v, self.stop)
        slot = self._slot(v)
        n = min(self.size, self.source.count - self.visits[v].chunk * self.size)
        # The slot's own list: frames decoded after this call appear in it.
        return Chunk(self.visits[v].chunk * self.size, self._frames[slot], self._crops[slot][:n])

    def loaded(self, v: int, local: int) -> int:
        """Wait until frame ``local`` of visit ``v``'s chunk is in; return how many of its frames are in."""
        with self._cond:
            wait_for(self._cond, lambda: self._has(v, local), self.stop)
            return self.size if self._ready >= v else self._loaded

    def is_loaded(self, v: int, local: int) -> bool:
        """Whether frame ``local`` of visit ``v``'s chunk is in, without waiting."""
        with self._cond:
            return self._has(v, local)

    def _has(self, v: int, local: int) -> bool:
        return self._ready >= v or (self._filling == v and self._loaded > local)

    def release(self, v: int) -> None:
        """Every output frame of visits ``0 .. v`` is finished with its cached frames."""
        with self._cond:
            self._released = v
            self._cond.notify_all()
