"""The processor: the reference renderer's work spread over threads (docs/design.md section 4).

::

    [preloader] --chunk slots--> [batcher] --Batch queue--> [model lanes] --(item, future) queue--> [writer]
                                                                 |                                   ^
                                                                 +--> ThreadPoolExecutor: composite,
                                                                      encode and save images --------+

- preloader: decodes template chunks into two preallocated slots, one ahead of the renderer.
- batcher: builds batches of ``batch`` model inputs into pooled buffers, numbered in output order.
- model lanes: each owns an ONNX Runtime session and takes the next batch from the queue, so two batches can
  be inferred side by side; the lanes hand their frames to the composite pool in batch order (a turnstile).
- composite pool (``workers`` threads): pastes predictions into pooled full-frame buffers and writes images.
- writer: takes finished frames in output order, feeds the video encoder, recycles buffers, reports progress
  and releases cache slots.

Queues are bounded, every wait looks at one stop event, and the first error of any stage is re-raised on the
caller's thread after every thread has been joined.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np

from composer.errors import OutputError, StageError
from composer.inputs.features import release
from composer.inputs.plan import Plan
from composer.model.session import Model
from composer.output.outputs import Outputs
from composer.rendering.layout import RenderLayout
from composer.rendering.memory import PIPELINE_DEPTH, in_flight, input_count, slot_count
from composer.rendering.observer import NullObserver, Observer
from composer.rendering.preload import Preloader, plan_visits
from composer.rendering.segment_renderer import RELEASE_FEATURES
from composer.rendering.step import FrameStep, ModelInputs
from composer.runtime.threads import POLL, Pool, Stopped, Supervisor, get, put, wait_for
from composer.runtime.trace import NullTracer

log = logging.getLogger("composer")
_MAX_ITEMS = 64  # frames per batch at most, so long runs of pass-through frames keep flowing


@dataclass(frozen=True)
class Item:
    """One output frame on its way through the stages."""

    index: int
    visit: int
    born: float  # perf_counter when the batcher took the frame up, for latency
    frame: np.ndarray  # the cached template frame
    crop: np.ndarray | None  # its cached crop, None when the frame passes through
    rect: tuple[int, int, int, int] | None


@dataclass(frozen=True)
class Slot:
    """A pooled pair of output buffers for one frame."""

    frame: np.ndarray  # H x W x 3: the template frame with the prediction pasted in
    video: np.ndarray | None  # the finished frame converted for the encoder, when the job writes a video


@dataclass(frozen=True)
class Batch:
    """Up to ``batch`` frames for the model, with the pass-through frames between them, in output order."""

    number: int  # position in output order, for the lanes' ordered hand-off
    items: tuple[Item, ...]
    inputs: ModelInputs
    count: int  # rows of ``inputs`` in use


class Turnstile:
    """Lets the lanes pass one at a time in batch order, whichever finishes its inference first."""

    def __init__(self, stop: threading.Event) -> None:
        self._next = 0
        self._cond = threading.Condition()
        self._stop = stop

    @contextlib.contextmanager
    def turn(self, number: int) -> Iterator[None]:
        """Wait (stop-aware) until every batch before ``number`` has passed; the block is batch ``number``'s."""
        with self._cond:
            wait_for(self._cond, lambda: self._next == number, self._stop)
        try:
            yield
        finally:
            with self._cond:
                self._next = number + 1
                self._cond.notify_all()


class Pipeline:
    """Renders a plan with the processor's threads.

    Args:
        plan: the checked inputs.
        lanes: one model session per model lane (:meth:`composer.inputs.plan.Plan.open_lanes`).
        outputs: open sinks.
        layout: batch, workers and chunk size (:func:`composer.rendering.layout.choose_layout`).
        observer: told of each finished frame, from the writer thread.
        tracer: records the stages' spans.
        run: the render's supervisor, shared with the outputs' threads (None: the processor's own).
    """

    def __init__(self, plan: Plan, lanes: Sequence[Model], outputs: Outputs, layout: RenderLayout,
                 observer: Observer | None = None, tracer: NullTracer | None = None,
                 run: Supervisor | None = None) -> None:
        if not lanes:
            raise ValueError("the processor needs at least one model lane")
        self.plan, self.lanes, self.outputs, self.layout = plan, tuple(lanes), outputs, layout
        self.step = FrameStep(plan)
        self.observer = observer or NullObserver()
        self.tracer = tracer or NullTracer()
        self.visits = plan_visits(plan.schedule, layout.chunk, outputs.start)
        self._batching = 0  # the frame the batcher is on, for error messages
        self._numbered = 0  # batches made so far
        self._supervisor = Supervisor(run)
        self.stop = self._supervisor.stop
        self.preloader = Preloader(plan.source, plan.rects, plan.job.model, layout.chunk, self.visits,
                                   self.stop, self.tracer)
        self._batches: queue.Queue[Batch | None] = queue.Queue(maxsize=PIPELINE_DEPTH)
        self._turnstile = Turnstile(self.stop)
        self._lanes_left = len(self.lanes)  # lanes still running; the last one closes the writer's queue
        self._lanes_lock = threading.Lock()
        self._finished: queue.Queue[tuple[Item, Future[Slot | None]] | None] = queue.Queue(
            maxsize=in_flight(layout.batch, layout.workers))
        self._inputs = Pool([ModelInputs.allocate(plan.job.model, self.lanes[0], layout.batch)
                             for _ in range(input_count(len(self.lanes)))])
        # Reusing the output slots keeps their pages warm (no fresh-page faults).
        self._slots = Pool([self._new_slot() for _ in range(slot_count(layout.batch, layout.workers))])

    def _new_slot(self) -> Slot:
        width, height = self.plan.source.width, self.plan.source.height
        video = None
        if self.outputs.video is not None:
            video = FrameStep.convert(np.zeros((height, width, 3), np.uint8), width, height)
        return Slot(np.empty((height, width, 3), np.uint8), video)

    def run(self) -> None:
        """Render every output frame; returns when all are written, raises the first stage error."""
        self.observer.started(self.plan.count - self.outputs.start)
        if not self.visits:
            self.observer.finished()
            return
        with ThreadPoolExecutor(self.layout.workers, thread_name_prefix="composer-composite") as pool:
            try:
                with self._supervisor:  # joins the stages, stopping them first if a spawn is cut short
                    self._supervisor.spawn("preload", self.preloader.run)
                    self._supervisor.spawn("batch", self._batch_stage)
                    for k, model in enumerate(self.lanes):
                        self._supervisor.spawn(f"model-{k}", functools.partial(self._model_stage, model, pool))
                    self._supervisor.spawn("write", self._write_stage)
            except BaseException:
                self.stop.set()  # ends the composite tasks still waiting for a buffer
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        self.observer.finished()

    # --- stages ---------------------------------------------------------------------------------------------

    def _batch_stage(self) -> None:
        try:
            self._make_batches()
        except (Stopped, StageError):
            raise
        except Exception as exc:
            raise StageError("prepare", f"frame {self._batching}", exc) from exc
        finally:
            for _ in self.lanes:
                _close(self._batches, self.stop)  # one end-of-stream sentinel per lane

    def _make_batches(self) -> None:
        plan, step, stop = self.plan, self.step, self.stop
        inputs: ModelInputs | None = None
        items: list[Item] = []
        count = 0
        for v, visit in enumerate(self.visits):
            if items and items[0].visit <= v - 2:
                # Visit v's slot is freed only once visit v-2 is written: a batch holding its frames must
                # go before waiting for the slot, or the batcher would wait on itself.
                put(self._batches, self._batch(items, inputs, count), stop)
                items, inputs, count = [], None, 0
            chunk = self.preloader.acquire(v)
            loaded = 0
            for i in range(visit.first, visit.stop):
                self._batching = i
                t = int(plan.schedule[i])
                rect, local = plan.rects.get(t), t - chunk.start
                if local >= loaded:
                    loaded = self.preloader.loaded(v, local)
                crop = None
                if rect is not None:
                    if inputs is None:
                        inputs = self._inputs.take(stop)
                    crop = chunk.crops[local]
                    with self.tracer.span("prepare", i):
                        step.prepare(i, crop, inputs, count)
                    count += 1
                frame = chunk.frames[local]
                assert frame is not None  # loaded() said so
                items.append(Item(i, v, time.perf_counter(), frame, crop, rect))
                if plan.features is not None and i % RELEASE_FEATURES == 0:
                    release(plan.features)
                if count == self.layout.batch or len(items) >= _MAX_ITEMS:
                    put(self._batches, self._batch(items, inputs, count), stop)
                    items, inputs, count = [], None, 0
        if items:
            put(self._batches, self._batch(items, inputs, count), stop)

    def _batch(self, items: list[Item], inputs: ModelInputs | None, count: int) -> Batch:
        if inputs is None:
            inputs = ModelInputs(np.empty((0,), np.float32), None)
        self._numbered += 1
        return Batch(self._numbered - 1, tuple(items), inputs, count)

    def _model_stage(self, model: Model, pool: ThreadPoolExecutor) -> None:
        try:
            while (batch := get(self._batches, self.stop)) is not None:
                predictions = None
                if batch.count:
                    predictions = self._infer(model, batch)
                    self._inputs.give(batch.inputs)
                with self._turnstile.turn(batch.number):
                    row = 0
                    for item in batch.items:
                        prediction = None
                        if item.rect is not None:
                            assert predictions is not None
                            prediction, row = predictions[row], row + 1
                        put(self._finished, (item, pool.submit(self._finish, item, prediction)), self.stop)
        finally:
            with self._lanes_lock:
                self._lanes_left -= 1
                last = self._lanes_left == 0
            if last:
                _close(self._finished, self.stop)

    def _infer(self, model: Model, batch: Batch) -> np.ndarray:
        frames = [item.index for item in batch.items if item.rect is not None]
        with self.tracer.span("infer", batch.items[0].index, batch.count):
            return self.step.infer(model, batch.inputs, frames)

    def _finish(self, item: Item, prediction: np.ndarray | None) -> Slot | None:
        """Composite task: the finished frame, saved as an image and converted for the encoder as the job asks.

        Returns the frame's slot for the writer (None for a pass-through frame without a video).
        """
        try:
            return self._composite_and_save(item, prediction)
        except (Stopped, StageError):
            raise
        except Exception as exc:
            raise StageError(self._task_stage(exc), f"frame {item.index}", exc) from exc

    @staticmethod
    def _task_stage(exc: Exception) -> str:
        return "write" if isinstance(exc, (OutputError, OSError)) else "composite"

    def _composite_and_save(self, item: Item, prediction: np.ndarray | None) -> Slot | None:
        frame, video = item.frame, self.outputs.video
        slot = None
        if item.rect is not None or video is not None:
            slot = self._slots.take(self.stop)
        if item.rect is not None:
            assert item.crop is not None and prediction is not None and slot is not None
            with self.tracer.span("composite", item.index):
                frame = self.step.paste(item.frame, item.crop, prediction, item.rect, out=slot.frame)
        if self.outputs.images is not None:
            with self.tracer.span("write_image", item.index):
                self.step.save(item.index, frame, self.outputs.images)
        if video is not None:
            assert slot is not None and slot.video is not None
            with self.tracer.span("write_video", item.index):
                self.step.convert(frame, video.width, video.height, slot.video)
        return slot

    def _write_stage(self) -> None:
        video = self.outputs.video
        while (entry := get(self._finished, self.stop)) is not None:
            item, future = entry
            slot = _result(future, self.stop)
            if video is not None:
                assert slot is not None and slot.video is not None
                try:
                    with self.tracer.span("write_video", item.index):
                        video.write_converted(slot.video)
                except StageError:
                    raise  # an encoder thread's failure, at its own frame
                except Exception as exc:
                    raise StageError("write", f"frame {item.index}", exc) from exc
            if slot is not None:
                self._slots.give(slot)
            if item.index + 1 == self.visits[item.visit].stop:
                self.preloader.release(item.visit)
            self.tracer.add("latency", item.born, time.perf_counter(), item.index)
            self.observer.frame_done(item.index)


def _result(future: Future[Slot | None], stop: threading.Event) -> Slot | None:
    while True:
        try:
            return future.result(timeout=POLL)
        except FutureTimeout:
            if stop.is_set():
                raise Stopped from None


def _close(q: queue.Queue[Any], stop: threading.Event) -> None:
    """Send the end-of-stream sentinel unless the run is stopping (then nobody reads it)."""
    with contextlib.suppress(Stopped):
        put(q, None, stop)
