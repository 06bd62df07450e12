"""The preloader: chunk sizes, visits, and rendering that starts before a chunk is fully decoded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from composer.config.job import ModelSpec, load_job
from composer.inputs.rects import Rects
from composer.inputs.schedule import schedule
from composer.inputs.sources import FolderSource, TemplateSource
from composer.rendering.preload import Preloader, chunk_size, plan_visits, small_pages
from composer.rendering.render import render
from composer.runtime.trace import Tracer


def test_whole_template_when_it_fits_else_two_slots():
    assert chunk_size(budget=10_000, per_frame=100, frames=50) == 50
    assert chunk_size(budget=1_000, per_frame=100, frames=50) == 5  # two slots of 5 frames
    assert chunk_size(budget=50, per_frame=100, frames=50) == 1


def test_visits_follow_the_ping_pong_through_the_chunks():
    visits = plan_visits(schedule(20, 7, "pingpong"), 3)
    assert [v.chunk for v in visits] == [0, 1, 2, 1, 0, 1, 2, 1]  # t = 0-2 | 3-5 | 6 | 5-3 | 2,1,0,1,2 | 3-5 | 6 | 5
    assert visits[0].first == 0 and visits[-1].stop == 20
    assert all(a.stop == b.first for a, b in zip(visits, visits[1:]))
    resumed = plan_visits(schedule(20, 7, "pingpong"), 3, start=10)
    assert resumed[0].first == 10 and [v.chunk for v in resumed] == [0, 1, 2, 1]
    assert plan_visits(schedule(20, 7, "pingpong"), 3, start=20) == []


def test_rendering_starts_before_the_chunk_is_decoded(monkeypatch, make_job):
    original = FolderSource.frames

    def slow(self, start=0, stop=None):
        for frame in original(self, start, stop):
            time.sleep(0.03)
            yield frame

    monkeypatch.setattr(FolderSource, "frames", slow)
    job = load_job(make_job(frames=12, outputs=12, nulls=()), {"run": {"batch": 1, "workers": 1}})
    tracer = Tracer()
    render(job, tracer=tracer)
    first_inference = min(s.start for s in tracer.of("infer"))
    last_decode = max(s.end for s in tracer.of("decode"))
    assert first_inference < last_decode, "the model waited for the whole template to be decoded"
    assert np.isfinite(first_inference)


def test_cache_slots_are_writable_arrays_of_their_own():
    a, b = small_pages((3, 4, 5, 3)), small_pages((3, 4, 5, 3))
    a[:] = 7
    b[:] = 9
    assert a.shape == (3, 4, 5, 3) and a.dtype == np.uint8 and a.flags.c_contiguous and a.flags.writeable
    assert int(a.sum()) == 7 * a.size and int(b.sum()) == 9 * b.size
    assert small_pages((0, 4)).shape == (0, 4)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_cache_slots_are_private_mappings():
    """Python's anonymous mmap is shared by default, which the kernel backs with slower shared memory."""
    a = small_pages((64, 1024))
    address = a.ctypes.data
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, perms = line.split()[:2]
        low, high = (int(x, 16) for x in span.split("-"))
        if low <= address < high:
            assert perms.endswith("p"), line
            return
    pytest.fail("the slot's mapping is not in /proc/self/maps")


class _Numbered(TemplateSource):
    """A template of ``count`` 4x4 frames, frame t filled with t; it counts how many it has handed out."""

    def __init__(self, count: int) -> None:
        self.path, self.count, self.width, self.height, self.fps = Path("numbered"), count, 4, 4, None
        self.handed: list[np.ndarray] = []

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        start, stop = self._range(start, stop)
        for t in range(start, stop):
            self.handed.append(np.full((4, 4, 3), t, np.uint8))
            yield self.handed[-1]


def test_slots_keep_the_decoded_frames_and_a_refill_drops_the_old_chunk():
    source = _Numbered(5)
    rects = Rects(np.zeros((5, 4), np.int32), np.zeros(5, bool))  # every frame passes through
    visits = plan_visits(np.arange(5), 2)  # chunks 0-1, 2-3, 4: the last one is shorter than its slot
    stop = threading.Event()
    preloader = Preloader(source, rects, ModelSpec(Path("m.onnx"), crop=4), 2, visits, stop)
    thread = threading.Thread(target=preloader.run)
    thread.start()
    try:
        for v in range(3):
            chunk = preloader.acquire(v)
            preloader.loaded(v, 0)
            assert chunk.frames[0] is source.handed[2 * v]  # the decoder's own array, not a copy
            preloader.release(v)
        thread.join(5)  # the last visit is loaded
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert chunk.frames[1] is None, "slot 0 still holds frame 1 of chunk 0"
