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
import math
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np
import psutil

from composer.config.job import Job
from composer.errors import OutputError, StageError
from composer.inputs.features import feature_window, release
from composer.inputs.plan import (
    Plan,
    encoder_layout,
    lanes_layout,
    open_plan,
    renders_segments,
    run_batch,
    run_workers,
    segment_encoders,
    segment_mode,
    zero_batch,
)
from composer.model.session import Model
from composer.output.outputs import Outputs, open_outputs
from composer.output.resume import SEGMENT_FRAMES
from composer.output.video_segments import encoder_backlog, pooled_frames
from composer.output.writers import convert_frame, converted_shape
from composer.rendering.composite import composite
from composer.rendering.observer import NullObserver, Observer, PeakMemory, RenderStats
from composer.rendering.preload import Preloader, chunk_size, frame_bytes, plan_visits
from composer.rendering.prepare import fill_image, image_channels
from composer.rendering.segment_renderer import RELEASE_FEATURES, SegmentRenderer
from composer.runtime.threads import POLL, Pool, Stopped, Supervisor, get, one_opencv_thread, put, wait_for
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
class Inputs:
    """A pooled pair of model input buffers."""

    images: np.ndarray  # [batch, channels, S, S] float32
    features: np.ndarray | None  # [batch, *feature_shape] float32


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
    inputs: Inputs
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


@dataclass(frozen=True)
class Settings:
    """Sizes resolved from the job's ``[run]`` section and the machine."""

    batch: int
    workers: int
    chunk: int
    depth: int = 2  # batches queued between batcher and model lanes

    @classmethod
    def resolve(cls, job: Job, plan: Plan, model: Model, lanes: int = 1, held: int = 0) -> Settings:
        """Batch from the model (fixed) or the job; chunk from ``[run] chunk`` or the memory it may take.

        ``[run] memory_budget`` bounds the whole render: the cache gets what is left of it once the process as
        it stands (``held`` bytes: interpreter, libraries and the warmed-up model sessions) and the
        processor's working buffers (:func:`working_bytes`) are counted. Without it the cache may take
        ``memory_fraction`` of the memory available now.
        """
        run = job.run
        frames = plan.source.count
        batch, workers = run_batch(job, model), run_workers(job)
        if run.chunk is not None:
            chunk = min(run.chunk, frames)
        else:
            per_frame = frame_bytes(plan.source.width, plan.source.height, job.model.crop)
            if run.memory_budget is not None:
                budget = run.memory_budget - held - working_bytes(plan, model, batch, workers, lanes)
                if budget < 2 * per_frame:
                    log.warning("memory_budget %d MB: the model and the working buffers already take %d MB; "
                                "caching one template frame at a time", run.memory_budget // 10**6,
                                (run.memory_budget - budget) // 10**6)
            else:
                budget = int(psutil.virtual_memory().available * run.memory_fraction)
            chunk = chunk_size(max(0, budget), per_frame, frames)
        return cls(batch=batch, workers=workers, chunk=chunk)


def slot_count(batch: int, workers: int) -> int:
    """Output slots the processor keeps: every frame that can be in flight at once has one (the writer's
    queue, the frame being written, and a batch the lane at the turnstile is handing out)."""
    return _in_flight(batch, workers) + batch + 2


def _in_flight(batch: int, workers: int) -> int:
    return 2 * batch + workers


def input_count(lanes: int, depth: int) -> int:
    """Model input buffers: one per queued batch, one per lane inferring, and one the batcher fills."""
    return depth + lanes + 1


ENCODER_FRAMES = 40  # an x264 (veryfast) holds 30-41 BGR frames' worth of memory at 1280x720, on 1 or 3 threads


def working_bytes(plan: Plan, model: Model, batch: int, workers: int, lanes: int,
                  depth: int = Settings.depth) -> int:
    """Bytes the processor's buffers take besides the cache: output slots, model inputs and outputs, encoders
    and the frames waiting for them."""
    width, height, spec = plan.source.width, plan.source.height, plan.job.model
    frame = 3 * width * height
    slot = frame + (frame // 2 if plan.job.output.video is not None else 0)
    sample = 4 * (image_channels(spec) * spec.window**2 + math.prod(model.inputs.feature_shape or (0,)))
    predictions = 4 * 3 * spec.window**2 * batch * lanes
    encoder = 0
    if plan.job.output.video is not None:
        encoders = encoder_layout(plan.job).encoders
        waiting = pooled_frames(encoders, encoder_backlog(encoders))
        encoder = encoders * ENCODER_FRAMES * frame + waiting * (frame // 2)
    return slot_count(batch, workers) * slot + input_count(lanes, depth) * batch * sample + predictions + encoder


def warm_up(lanes: Sequence[Model], job: Job) -> None:
    """Run each lane once on a batch of zeros of the job's batch size, so ONNX Runtime's arenas reach their
    working size now: before the memory left for the cache is measured, and outside the render's time."""
    batch = run_batch(job, lanes[0])
    for model in lanes:
        model.run(*zero_batch(model, batch))


class Pipeline:
    """Renders a plan with the processor's threads.

    Args:
        plan: the checked inputs.
        lanes: one model session per model lane (:meth:`composer.inputs.plan.Plan.open_lanes`).
        outputs: open sinks.
        settings: batch, workers and chunk sizes.
        observer: told of each finished frame, from the writer thread.
        tracer: records the stages' spans.
        run: the render's supervisor, shared with the outputs' threads (None: the processor's own).
    """

    def __init__(self, plan: Plan, lanes: Sequence[Model], outputs: Outputs, settings: Settings,
                 observer: Observer | None = None, tracer: NullTracer | None = None,
                 run: Supervisor | None = None) -> None:
        if not lanes:
            raise ValueError("the processor needs at least one model lane")
        self.plan, self.lanes, self.outputs, self.settings = plan, tuple(lanes), outputs, settings
        self.observer = observer or NullObserver()
        self.tracer = tracer or NullTracer()
        self.visits = plan_visits(plan.schedule, settings.chunk, outputs.start)
        self._batching = 0  # the frame the batcher is on, for error messages
        self._numbered = 0  # batches made so far
        self._supervisor = Supervisor(run)
        self.stop = self._supervisor.stop
        self.preloader = Preloader(plan.source, plan.rects, plan.job.model, settings.chunk, self.visits,
                                   self.stop, self.tracer)
        self._batches: queue.Queue[Batch | None] = queue.Queue(maxsize=settings.depth)
        self._turnstile = Turnstile(self.stop)
        self._lanes_left = len(self.lanes)  # lanes still running; the last one closes the writer's queue
        self._lanes_lock = threading.Lock()
        self._finished: queue.Queue[tuple[Item, Future[Slot | None]] | None] = queue.Queue(
            maxsize=_in_flight(settings.batch, settings.workers))
        self._inputs = Pool([self._new_inputs() for _ in range(input_count(len(self.lanes), settings.depth))])
        # Reusing the output slots keeps their pages warm (no fresh-page faults).
        self._slots = Pool([self._new_slot() for _ in range(slot_count(settings.batch, settings.workers))])

    def _new_slot(self) -> Slot:
        width, height = self.plan.source.width, self.plan.source.height
        video = None
        if self.outputs.video is not None:
            video = np.empty(converted_shape(width, height), np.uint8)
        return Slot(np.empty((height, width, 3), np.uint8), video)

    def _new_inputs(self) -> Inputs:
        spec, inputs, b = self.plan.job.model, self.lanes[0].inputs, self.settings.batch
        images = np.zeros((b, image_channels(spec), spec.window, spec.window), dtype=np.float32)
        features = None
        if inputs.feature_shape is not None:
            features = np.zeros((b, *inputs.feature_shape), dtype=np.float32)
        return Inputs(images, features)

    def run(self) -> None:
        """Render every output frame; returns when all are written, raises the first stage error."""
        self.observer.started(self.plan.count - self.outputs.start)
        if not self.visits:
            self.observer.finished()
            return
        with ThreadPoolExecutor(self.settings.workers, thread_name_prefix="composer-composite") as pool:
            try:
                self._supervisor.spawn("preload", self.preloader.run)
                self._supervisor.spawn("batch", self._batch_stage)
                for k, model in enumerate(self.lanes):
                    self._supervisor.spawn(f"model-{k}", functools.partial(self._model_stage, model, pool))
                self._supervisor.spawn("write", self._write_stage)
                self._supervisor.join()
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
        plan, spec, stop = self.plan, self.plan.job.model, self.stop
        window = plan.job.features.window if plan.job.features is not None else 0
        inputs: Inputs | None = None
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
                        fill_image(crop, spec, inputs.images[count])
                        if inputs.features is not None and plan.features is not None:
                            inputs.features[count] = feature_window(plan.features, i, window).reshape(
                                inputs.features.shape[1:])
                    count += 1
                frame = chunk.frames[local]
                assert frame is not None  # loaded() said so
                items.append(Item(i, v, time.perf_counter(), frame, crop, rect))
                if plan.features is not None and i % RELEASE_FEATURES == 0:
                    release(plan.features)
                if count == self.settings.batch or len(items) >= _MAX_ITEMS:
                    put(self._batches, self._batch(items, inputs, count), stop)
                    items, inputs, count = [], None, 0
        if items:
            put(self._batches, self._batch(items, inputs, count), stop)

    def _batch(self, items: list[Item], inputs: Inputs | None, count: int) -> Batch:
        if inputs is None:
            inputs = Inputs(np.empty((0,), np.float32), None)
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
        features = batch.inputs.features
        try:
            with self.tracer.span("infer", batch.items[0].index, batch.count):
                return model.run(
                    batch.inputs.images[: batch.count], None if features is None else features[: batch.count]
                )
        except Exception as exc:
            indices = [item.index for item in batch.items if item.rect is not None]
            raise StageError("infer", f"frames {indices[0]}-{indices[-1]}", exc) from exc

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
            spec = self.plan.job
            with self.tracer.span("composite", item.index):
                frame = composite(item.frame, item.crop, prediction, item.rect, spec.model, spec.composite,
                                  out=slot.frame)
        if self.outputs.images is not None:
            with self.tracer.span("write_image", item.index):
                self.outputs.images.write(item.index, frame)
        if video is not None:
            assert slot is not None and slot.video is not None
            with self.tracer.span("write_video", item.index):
                convert_frame(frame, video.width, video.height, slot.video)
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


def _close(q: queue.Queue[object], stop: threading.Event) -> None:
    """Send the end-of-stream sentinel unless the run is stopping (then nobody reads it)."""
    with contextlib.suppress(Stopped):
        put(q, None, stop)


def render(job: Job, observer: Observer | None = None, tracer: NullTracer | None = None,
           resume: bool = False) -> RenderStats:
    """Render ``job`` with the processor and write its outputs.

    Args:
        job: the job.
        observer: told of each finished frame.
        tracer: records the stages' spans.
        resume: continue an interrupted run of the same job from where it stopped.

    Raises:
        ComposerError: a bad input (before the first frame, where it can be found then) or a stage failure.
    """
    memory = PeakMemory()
    with open_plan(job) as plan:
        lanes = plan.open_render_lanes()
        warm_up(lanes, job)
        settings = Settings.resolve(job, plan, lanes[0], len(lanes), held=psutil.Process().memory_info().rss)
        cached = settings.chunk * frame_bytes(plan.source.width, plan.source.height, job.model.crop)
        log.info("cache: %d of %d template frames per chunk (%d MB%s)", settings.chunk, plan.source.count,
                 cached // 10**6, "" if settings.chunk >= plan.source.count else " per slot, two slots")
        segments = renders_segments(job, settings.chunk, plan.source.count)
        if segment_mode(job) and not segments:
            (log.warning if job.run.mode == "segments" else log.info)(
                "run.mode: the segment renderer needs all %d template frames cached, the memory allows %d; "
                "rendering with the pipeline", plan.source.count, settings.chunk)
        layout = segment_encoders(job) if segments else encoder_layout(job)
        if segments:
            log.info("segments: %s, batch %d, each lane rendering whole %d-frame segments",
                     lanes_layout(lanes).text(), settings.batch, SEGMENT_FRAMES)
        else:
            log.info("pipeline: model %s, batch %d; %d composite workers", lanes_layout(lanes).text(),
                     settings.batch, settings.workers)
        if job.output.video is not None:
            log.info("video: %s, %d-frame segments", layout.text(), SEGMENT_FRAMES)
        began = time.perf_counter()
        run = Supervisor()  # one stop event and one first error for the processor's and the outputs' threads
        with one_opencv_thread(), open_outputs(plan, resume, run, layout) as outputs:
            if segments:
                SegmentRenderer(plan, lanes, outputs, settings.batch, observer, tracer, run).run()
            else:
                Pipeline(plan, lanes, outputs, settings, observer, tracer, run).run()
        seconds = time.perf_counter() - began
    return RenderStats(frames=plan.count - outputs.start, seconds=seconds, peak_rss=memory.peak)
