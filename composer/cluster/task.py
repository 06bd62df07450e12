"""One segment of a job, rendered where a cluster worker runs it.

A task opens the job's files itself (they are at the same paths on every worker), decodes only the template
frames its segment uses (one seek to the keyframe before each run of them, then forward: a ping-pong segment's
frames are at most two runs), renders its output frames with the frame step on one model session of the task's
thread, saves their images and encodes its video segment, which takes its final name only when it is complete.
The segment's bytes depend on the job alone (:func:`composer.output.video_segments.open_segment`), so a segment
retried on another worker is the same file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from composer.config.job import Job
from composer.errors import ComposerError, StageError
from composer.inputs.plan import Plan, open_plan
from composer.model.session import Model
from composer.output.resume import parts_folder
from composer.output.video_segments import open_segment
from composer.output.writers import ImageFolderSink, VideoSink, converted_shape
from composer.rendering.layout import run_batch, warm_up
from composer.rendering.step import FrameStep, ModelInputs
from composer.runtime.threads import one_opencv_thread
from composer.runtime.trace import Span, Tracer

EXIT_ONCE = "COMPOSER_CLUSTER_EXIT_ONCE"  # tests: a marker file; the first task to create it ends its worker
STOP_POLL = 0.25  # seconds between looks at the run's stop event


class TaskFailed(Exception):
    """A segment that failed for a reason of its own, as a plain exception that crosses processes intact.

    Args:
        message: the single-machine message (stage and frame).
        exit_code: the status the command exits with (1 for a failure while rendering, 2 for a bad input).
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message, exit_code)
        self.message, self.exit_code = message, exit_code

    def __str__(self) -> str:
        return self.message


class TaskStopped(Exception):
    """The run was stopped (Ctrl-C or another segment's failure) while the task ran."""


@dataclass(frozen=True)
class SegmentTask:
    """Output frames ``first .. stop-1`` of ``job``: video segment ``number``."""

    job: Job
    number: int
    first: int
    stop: int
    stop_event: str | None = None  # the name of the run's Dask event that asks running tasks to stop


@dataclass(frozen=True)
class TaskTimes:
    """Where a task's seconds went: its fixed costs and its frames."""

    start: float  # the job's inputs opened and the model session ready
    decode: float  # the seeks, decoding and crops of the template frames it uses
    encoder: float  # the segment's x264 opened
    render: float  # its frames: model, composite, images, encoding
    write: float  # the segment finished and renamed into place


@dataclass(frozen=True)
class SegmentResult:
    """A finished segment: where it ran, what it cost, and its spans (wall-clock times, by the worker's clock)."""

    number: int
    first: int
    stop: int
    worker: str
    times: TaskTimes
    spans: tuple[Span, ...] = field(default=())


_sessions = threading.local()  # each worker thread's model session and last template frames, kept from task to task


def template_runs(used: np.ndarray) -> list[tuple[int, int]]:
    """The template frames ``used`` as runs ``(first, stop)`` of consecutive frames, in order."""
    distinct = np.unique(used)
    if distinct.size == 0:
        return []
    breaks = np.nonzero(np.diff(distinct) > 1)[0]
    firsts = [int(distinct[0]), *(int(distinct[b + 1]) for b in breaks)]
    lasts = [*(int(distinct[b]) for b in breaks), int(distinct[-1])]
    return [(a, b + 1) for a, b in zip(firsts, lasts)]


def worker_name() -> str:
    """The Dask worker running this task (its address), or this process's id outside a worker."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _model(plan: Plan) -> Model:
    """A one-thread session of the job's model for this thread, reused while the model and its shapes stay."""
    spec = plan.job.model
    stat = spec.path.stat()
    key = (spec, stat.st_size, stat.st_mtime_ns, None if plan.features is None else plan.features.shape[1:])
    cached = getattr(_sessions, "model", None)
    if cached is None or cached[0] != key:
        _sessions.model = None  # the old session goes before the new one loads
        model = plan.open_model(threads=1)
        warm_up([model], run_batch(plan.job, model))
        _sessions.model = (key, model)
    model = _sessions.model[1]
    assert isinstance(model, Model)
    return model


def _stop_check(name: str | None) -> Callable[[], None]:
    """A function that raises :class:`TaskStopped` once the run's event is set (looking every STOP_POLL s)."""
    if name is None:
        return lambda: None
    from distributed import Event

    event, last = Event(name), [0.0]

    def check() -> None:
        now = time.perf_counter()
        if now - last[0] >= STOP_POLL:
            last[0] = now
            if event.is_set():
                raise TaskStopped(name)

    return check


def _exit_once(i: int, task: SegmentTask) -> None:
    """Tests: halfway through its segment, end this worker's process if the marker file can still be created."""
    marker = os.environ.get(EXIT_ONCE)
    if marker and i == (task.first + task.stop) // 2:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os._exit(3)


def render_segment(task: SegmentTask) -> SegmentResult:
    """Render one segment (run on a worker). Its own failure comes back as a :class:`TaskFailed`."""
    tracer = Tracer()
    try:
        with one_opencv_thread():
            times = _render(task, tracer)
    except (TaskStopped, TaskFailed):
        raise
    except ComposerError as exc:
        raise TaskFailed(str(exc), exc.exit_code) from None
    except Exception as exc:  # noqa: BLE001 - any failure is one line at the client
        raise TaskFailed(f"segment {task.number}: {type(exc).__name__}: {exc}", 1) from None
    worker = worker_name()
    wall = time.time() - time.perf_counter()
    spans = tuple(replace(s, thread=f"{worker} {s.thread}", start=s.start + wall, end=s.end + wall)
                  for s in tracer.spans)
    return SegmentResult(task.number, task.first, task.stop, worker, times, spans)


def _render(task: SegmentTask, tracer: Tracer) -> TaskTimes:
    began = time.perf_counter()
    job, stopped = task.job, _stop_check(task.stop_event)
    stopped()  # a task that starts after the run was stopped does nothing
    with open_plan(job, scan_features=False) as plan:  # the client checked the features' values
        model = _model(plan)
        batch = run_batch(job, model)
        opened = time.perf_counter()
        frames, crops = _template(plan, task, tracer)
        decoded = time.perf_counter()
        spec = job.output
        images = ImageFolderSink(spec.frames, spec.format, spec.quality, clean=False) if spec.frames else None
        video = None
        if spec.video is not None:
            video = open_segment(parts_folder(spec.video), task.number, plan.fps, plan.source.width,
                                 plan.source.height, spec.crf, spec.preset)
        encoder = time.perf_counter()
        try:
            _frames(plan, task, model, batch, frames, crops, images, video, tracer, stopped)
            rendered = time.perf_counter()
            if video is not None:
                with tracer.span("write_video", task.stop - 1):
                    video.close()
                video = None
        finally:
            if video is not None:
                video.abort()
    done = time.perf_counter()
    return TaskTimes(opened - began, decoded - opened, encoder - decoded, rendered - encoder, done - rendered)


def _template(plan: Plan, task: SegmentTask, tracer: Tracer) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """The template frames the segment uses, and the crops of those with a rectangle.

    A worker thread keeps the frames of its last segment of the same run: consecutive segments of a ping-pong or
    repeating schedule use many of the same template frames (a 100-frame template, all of them), which are then
    decoded once per thread rather than once per segment. What is kept is at most one segment's frames, which
    the task holds anyway.
    """
    step = FrameStep(plan)
    key = (task.stop_event, plan.job.template, plan.job.model)
    kept = getattr(_sessions, "template", None)
    old_frames, old_crops = kept[1:] if kept is not None and task.stop_event is not None and kept[0] == key \
        else ({}, {})
    _sessions.template = None  # the old frames go once the new ones are taken from them
    used = np.unique(plan.schedule[task.first:task.stop])
    frames = {int(t): old_frames[int(t)] for t in used if int(t) in old_frames}
    crops = {t: old_crops[t] for t in frames if t in old_crops}
    missing = np.array([t for t in used if int(t) not in frames], dtype=np.int64)
    for first, stop in template_runs(missing):
        with tracer.span("decode", first, stop - first):
            for t, frame in enumerate(plan.source.frames(first, stop), first):
                frames[t] = frame
                rect = plan.rects.get(t)
                if rect is not None:
                    try:
                        crops[t] = step.crop(frame, rect)
                    except Exception as exc:
                        raise StageError("prepare", f"template frame {t}", exc) from exc
    _sessions.template = (key, frames, crops)
    return frames, crops


def _frames(plan: Plan, task: SegmentTask, model: Model, batch: int, frames: dict[int, np.ndarray],
            crops: dict[int, np.ndarray], images: ImageFolderSink | None, video: VideoSink | None,
            tracer: Tracer, stopped: Callable[[], None]) -> None:
    """Render output frames ``task.first .. task.stop-1`` in order, ``batch`` frames a model call."""
    step = FrameStep(plan)
    inputs = ModelInputs.allocate(plan.job.model, model, batch)
    i420 = np.empty(converted_shape(video.width, video.height), np.uint8) if video is not None else None
    waiting: list[int] = []

    def finish(i: int, frame: np.ndarray) -> None:
        try:
            with tracer.span("write_image", i):
                step.save(i, frame, images)
            if video is not None:
                with tracer.span("write_video", i):
                    video.write_converted(step.convert(frame, video.width, video.height, i420))
        except Exception as exc:
            raise StageError("write", f"frame {i}", exc) from exc

    def flush() -> None:
        if not waiting:
            return
        with tracer.span("infer", waiting[0], len(waiting)):
            predictions = step.infer(model, inputs, waiting)
        for i, prediction in zip(waiting, predictions):
            t = int(plan.schedule[i])
            rect = plan.rects.get(t)
            assert rect is not None
            try:
                with tracer.span("composite", i):
                    out = step.paste(frames[t], crops[t], prediction, rect)
            except Exception as exc:
                raise StageError("composite", f"frame {i}", exc) from exc
            finish(i, out)
        waiting.clear()

    for i in range(task.first, task.stop):
        stopped()
        _exit_once(i, task)
        t = int(plan.schedule[i])
        if plan.rects.get(t) is None:
            flush()
            finish(i, frames[t])
            continue
        try:
            with tracer.span("prepare", i):
                step.prepare(i, crops[t], inputs, len(waiting))
        except Exception as exc:
            raise StageError("prepare", f"frame {i}", exc) from exc
        waiting.append(i)
        if len(waiting) == batch:
            flush()
    flush()
