"""A job rendered on a Dask cluster: each video segment a task, the pieces joined here.

::

    client: inputs checked, workers checked -> a task per segment --> [worker] segment 0 -> images, part-000000.mp4
                                                                 --> [worker] segment 1 -> images, part-000001.mp4
            progress from finished tasks <-- results (times, spans)      ...
            the segments and the audio joined exactly as one machine does

The segments and every x264 setting of each depend on the job alone, so the images and the mp4 are the
single-machine run's, byte for byte. A worker that dies is replaced and its segment started again (at most
:data:`~composer.cluster.connect.RETRIES` times); a segment that fails for a reason of its own stops the run:
every task is told to stop through the run's stop event (a running one at its next look, a waiting one as it
starts), the client waits for them (at most :data:`STOP_SECONDS`) so that none is left writing, and the error is
the single-machine one, with its segment. Ctrl-C does the same and keeps every finished segment for ``--resume``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import replace

from composer.cluster.connect import RETRIES, connect
from composer.cluster.storage import check_workers
from composer.cluster.task import SegmentResult, SegmentTask, TaskFailed, render_segment
from composer.config.defaults import EncoderLayout
from composer.config.job import Job
from composer.errors import ComposerError
from composer.inputs.audio_features import with_features_file
from composer.inputs.plan import open_plan
from composer.output.lock import lock_outputs
from composer.output.outputs import open_outputs
from composer.output.resume import SEGMENT_FRAMES, segment_done
from composer.rendering.observer import NullObserver, Observer, PeakMemory, RenderStats
from composer.rendering.segment_renderer import segment_units
from composer.runtime.trace import NullTracer, Tracer

STOP_SECONDS = 30  # the most a stopped run waits for its running tasks to stop
ONE_ENCODER = EncoderLayout(1, per_lane=True)  # the client encodes nothing: its sink joins the workers' segments


class SegmentFailed(ComposerError):
    """A segment failed on a worker: the single-machine message, with the segment."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def render_on_cluster(job: Job, address: str, observer: Observer | None = None, tracer: NullTracer | None = None,
                      resume: bool = False, results: list[SegmentResult] | None = None, frames: int | None = None,
                      overwrite: bool = False) -> RenderStats:
    """Render ``job`` on the Dask cluster at ``address`` (``tcp://host:port``, or ``local:N`` for N worker
    processes started here) and write its outputs, byte-identical to :func:`composer.render`'s.

    Args:
        job: the job; its inputs and output folders must be at the same paths on every worker.
        address: the scheduler, or ``local:N[xK]``.
        observer: told of each frame of each finished segment.
        tracer: receives every task's spans, each thread named after its worker.
        resume: continue an interrupted run (of this machine or a cluster): only missing segments are rendered.
        results: where given, each finished segment's result is appended (the benchmark reads the tasks' costs).
        frames: render only the first output frames (a preview), as :func:`composer.render` does.
        overwrite: remove an earlier, longer run's numbered images instead of refusing to start.

    Raises:
        JobError: a bad input, an unreachable scheduler, or a worker that cannot see the job's files (exit 2).
        SegmentFailed: a segment failed (exit 1, naming the segment, stage and frame).
        Interrupted: Ctrl-C stopped the render once its outputs were open.
    """
    observer, tracer = observer or NullObserver(), tracer or NullTracer()
    memory = PeakMemory()
    with lock_outputs(job), open_plan(job, frames) as plan:
        plan.open_model(threads=1)  # a model that does not fit the job is refused here, before any task
        if plan.features_file is not None:  # features made from audio: the tasks read the rows the plan encoded
            job = with_features_file(job, plan.features_file)
        with connect(address) as client:
            check_workers(client, job)
            began = time.perf_counter()
            with open_outputs(plan, resume, layout=ONE_ENCODER, overwrite=overwrite) as outputs:
                units = [(a, b) for a, b in segment_units(outputs.start, plan.count)
                         if not (outputs.resumed and segment_done(job, a, b))]
                observer.started(sum(b - a for a, b in units))
                for result in _run(client, job, units, observer, tracer):
                    if results is not None:
                        results.append(result)
                if outputs.video is not None:
                    outputs.video.frames_written = plan.count
                observer.finished()
            seconds = time.perf_counter() - began
    return RenderStats(frames=plan.count - outputs.start, seconds=seconds, peak_rss=memory.peak)


def _run(client: object, job: Job, units: list[tuple[int, int]], observer: Observer,
         tracer: NullTracer) -> Iterable[SegmentResult]:
    """Submit a task per segment and yield each result as it comes; the first failure (or Ctrl-C) stops the
    rest: pending tasks are cancelled and running ones told to stop."""
    from distributed import Client, Event, as_completed, wait
    from distributed.scheduler import KilledWorker

    assert isinstance(client, Client)
    run = uuid.uuid4().hex
    stop = Event(f"composer-stop-{run}", client=client)
    tasks = {f"composer-segment-{a // SEGMENT_FRAMES:06d}-{run}": SegmentTask(job, a // SEGMENT_FRAMES, a, b,
                                                                              stop.name)
             for a, b in units}
    futures = [client.submit(render_segment, task, key=key, pure=False, retries=0) for key, task in tasks.items()]
    offset = time.time() - time.perf_counter()  # the spans come in wall-clock time
    try:
        for future in as_completed(futures):
            task = tasks[future.key]
            try:
                result: SegmentResult = future.result()
            except TaskFailed as exc:
                raise SegmentFailed(f"segment {task.number} (frames {task.first}-{task.stop - 1}): {exc.message}",
                                    exc.exit_code) from None
            except KilledWorker:
                raise SegmentFailed(f"segment {task.number} (frames {task.first}-{task.stop - 1}): the worker "
                                    f"running it died {RETRIES + 1} times") from None
            for i in range(result.first, result.stop):
                observer.frame_done(i)
            if isinstance(tracer, Tracer):
                tracer.extend(replace(s, start=s.start - offset, end=s.end - offset) for s in result.spans)
            yield result
    except BaseException:
        stop.set()  # running tasks stop at their next look, waiting ones as they start
        with contextlib.suppress(Exception):
            wait(futures, timeout=STOP_SECONDS)  # none is left writing when the outputs are released
        client.cancel(futures)
        raise
