"""``composer live``: the reader, renderer and writer threads together (docs/design.md 4.10).

Three threads and one stop event (:class:`composer.runtime.threads.Supervisor`):

- the reader reads rows from a descriptor, keeps them for the windows, places each on the stream's timeline and
  offers it to the renderer through a size-1 slot where the newest row wins;
- the renderer takes the newest row and renders its frame, unless that frame could no longer make its slot;
- the writer keeps the clock: at each slot's time it writes the slot's frame if it is finished, else the last
  frame again (the row is dropped), or, where no row is placed, the template's own frame (idle).

The end of the input ends the stream once every row's slot has been written; a malformed row, Ctrl-C or SIGTERM
stop every thread at once. Either way every thread is joined, then the stream is closed so that it plays.
"""

from __future__ import annotations

import contextlib
import math
import queue
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from composer.config import defaults
from composer.config.job import Job
from composer.errors import JobError
from composer.inputs.features import row_shape_of
from composer.inputs.plan import Plan, open_template_inputs
from composer.live.clock import Clock, Slot, now, sleep_until
from composer.live.reader import RowHistory, RowReader
from composer.live.renderer import LiveRenderer, LiveTemplate
from composer.live.stats import FrameRecord, LiveStats, SlotRecord, Tally
from composer.live.stream import STDOUT, ReaderGone, Stream, open_stream, stream_output
from composer.live.timeline import SLACK, Timeline
from composer.model.session import Model
from composer.output.lock import OutputLock
from composer.output.safety import check_paths, job_inputs
from composer.runtime.threads import Supervisor, get, put
from composer.runtime.trace import NullTracer

OpenModel = Callable[[Job, tuple[int, ...]], Model]
FINISHED = 4  # finished frames the renderer may hold ahead of the writer
HISTORY_SECONDS = 2.0  # rows kept beyond the latency budget, for windows of rows that are still on their way


def row_shape(job: Job) -> tuple[int, ...]:
    """The shape of one row: ``features.row_shape``, or the rows of ``features.path``'s array.

    Raises:
        JobError: the job has no ``[features]``, or the two shapes disagree.
    """
    features = job.features
    if features is None:
        raise JobError("job key features: composer live reads feature rows from its input; state their shape "
                       "with features.row_shape")
    shape = features.row_shape
    if features.path is not None:
        rows = row_shape_of(features.path)  # the shape alone: live never reads the file's rows
        if shape is not None and shape != rows:
            raise JobError(f"job key features.row_shape: {list(shape)}, but the rows of {features.path} are "
                           f"{list(rows)}")
        shape = rows
    if shape is None:
        raise JobError("job key features.row_shape: missing; composer live reads feature rows from its input, not "
                       "from features.audio, and needs their shape")
    return shape


def open_job_model(job: Job, shape: tuple[int, ...]) -> Model:
    """The job's model for rows of ``shape``, on ``[run] threads`` (else every usable core)."""
    window = job.features.window if job.features is not None else 1
    return Model(job.model, feature_row_shape=shape, window=window,
                 threads=job.run.threads or defaults.usable_cores(), batch=1)  # one frame a call: no padding


def auto_latency(frame_seconds: float, period: float) -> float:
    """The latency budget: a row may find the renderer busy with the frame before it, then needs its own, and
    lands up to half a period early on its slot; a further half period is the margin. Two periods at least."""
    return max(2 * period, 2 * frame_seconds + period)


class Live:
    """A live run of one job, opened by :func:`open_live`: :meth:`run` streams, :meth:`stats` summarises."""

    def __init__(self, plan: Plan, renderer: LiveRenderer, latency: float, cost: float, tracer: NullTracer) -> None:
        self.plan, self.renderer, self.cost, self.tracer = plan, renderer, cost, tracer
        self.template, self.history, self.shape = renderer.template, renderer.history, renderer.history.row_shape
        self.clock = Clock(plan.fps, latency)
        self.timeline = Timeline(self.clock, least=max(0.0, min(2 * cost, latency - self.clock.period / 2)))
        self.slot: Slot[FrameRecord] = Slot()
        self.finished: queue.Queue[tuple[FrameRecord, np.ndarray]] = queue.Queue(FINISHED)
        self.tally = Tally()
        self.busy, self.rendered_any = 0.0, 0
        self.reader_gone: str | None = None  # why the stream ended early, when standard output's reader left

    def run(self, fd: int, output: str) -> LiveStats:
        """Stream the rows read from ``fd`` to ``output`` (a ``.ts`` file, ``-``, or an image folder).

        Raises:
            JobError: a malformed row (partial at the end, NaN or infinite); the stream so far is closed. Or
                ``output`` would overwrite an input.
            OutputError: the stream cannot be written, or another run writes it.
            KeyboardInterrupt: Ctrl-C or SIGTERM; the stream so far is closed and plays.
        """
        source, job = self.plan.source, self.plan.job
        reader = RowReader(fd, self.shape, self._deliver)
        with contextlib.ExitStack() as held:
            if output != STDOUT:
                check_paths(job_inputs(job), [stream_output(output)])
                held.enter_context(OutputLock(Path(output)))  # one run at a time writes a stream
            stream = open_stream(output, self.plan.fps, source.width, source.height, job.output)
            held.push(stream)  # closed (so that it plays) however the block ends
            try:
                with Supervisor() as run:
                    run.spawn("live-reader", lambda: self._read(reader, run))
                    run.spawn("live-renderer", lambda: self._render(run))
                    run.spawn("live-writer", lambda: self._write(stream, run))
            finally:
                self.slot.drain()
        return self.stats()

    def stats(self) -> LiveStats:
        """The run's summary so far."""
        return LiveStats.of(self.tally, fps=float(self.plan.fps), latency=self.clock.latency,
                            rows=self.timeline.rows, busy=(self.busy, self.rendered_any),
                            displaced=self.timeline.displaced)

    # --- the threads ---------------------------------------------------------------------------------------

    def _deliver(self, index: int, row: np.ndarray, arrival: float) -> None:
        self.history.add(index, row)
        self.timeline.place(index, arrival)
        self.slot.put(FrameRecord(index, arrival))  # a stale row it replaces keeps its slot, repeated there
        self.tracer.add("read", arrival, now(), index)

    def _read(self, reader: RowReader, run: Supervisor) -> None:
        try:
            reader.run(run.stop)
        finally:
            self.timeline.end()
            self.slot.close()

    def _render(self, run: Supervisor) -> None:
        while (record := self.slot.take(run.stop)) is not None:
            slot = self.timeline.slot_of(record.index)
            if slot is None or self.clock.due(slot) - now() < self.cost:
                continue  # it would be late: its slot repeats the last frame
            began = now()
            frame = self.renderer.render(record.index, record)
            self.busy += now() - began
            self.rendered_any += 1
            put(self.finished, (record, frame), run.stop)

    def _write(self, stream: Stream, run: Supervisor) -> None:
        if not self.timeline.wait_start(run.stop):
            return  # the input ended before its first row: an empty stream
        waiting: dict[int, tuple[FrameRecord, np.ndarray]] = {}
        last: np.ndarray | None = None
        shown = (0, 0)  # (row, slot) shown last, which idle slots continue the template from
        k = 0
        while not self.timeline.over(k):
            due = self.clock.due(k)
            sleep_until(due, run.stop)
            while not self.finished.empty():
                record, frame = get(self.finished, run.stop)
                waiting[record.index] = (record, frame)
            row = self.timeline.take(k)
            done: FrameRecord | None = None
            if row is None:
                kind, t = "idle", self.template.index(shown[0] + k - shown[1])
                frame = self.template.frame(t)
            else:
                t, shown = self.template.index(row), (row, k)
                for early in [r for r in waiting if r < row]:
                    del waiting[early]  # rendered too late for a slot already written
                if row in waiting:
                    (done, frame), kind = waiting.pop(row), "rendered"
                    done.due = due
                else:
                    kind, frame = "dropped", last if last is not None else self.template.frame(t)
            try:
                encoded, written = stream.write(k, frame)
            except ReaderGone as exc:
                self.reader_gone = str(exc)  # nobody watches any more: every thread ends, as at the input's end
                run.stop.set()
                return
            if done is not None:
                done.encoded, done.written = encoded, written
                self.tally.frame(done)
                self.tracer.add("encode", due, encoded, row)
                self.tracer.add("write", encoded, written, row)
            self.tally.slot(SlotRecord(k, kind, row, t))
            last, k = frame, k + 1


@contextlib.contextmanager
def open_live(job: Job, *, latency: float | None = None, tracer: NullTracer | None = None,
              open_model: OpenModel | None = None) -> Iterator[Live]:
    """Open a job for a live run: template in memory, rectangles checked, model loaded and timed.

    Args:
        job: the job; its ``[features]`` give the rows' shape and window, its ``[output]`` the fps and x264
            settings (its frames and video paths are not written).
        latency: seconds from a row's arrival to its frame's slot; None: :func:`auto_latency` of the model's time.
        tracer: records the threads' spans.
        open_model: opens the model for rows of a shape (the default: :func:`open_job_model`).

    Raises:
        JobError, SourceError, ModelError: as a file render's.
    """
    shape = row_shape(job)
    with open_template_inputs(job) as (source, rects, fps):
        # no features file and no schedule: the rows arrive on the input, each placed by the clock
        plan = Plan(job=job, source=source, rects=rects, features=None, schedule=np.zeros(0, np.int64), fps=fps)
        template = LiveTemplate(plan)
        model = (open_model or open_job_model)(job, shape)
        history = RowHistory(shape, keep=1)
        renderer = LiveRenderer(plan, template, model, history, tracer)
        cost = renderer.frame_seconds()
        budget = latency if latency is not None else auto_latency(cost, float(1 / plan.fps))
        # the rows a window may still reach back to, over the latency and the slack
        history.keep = renderer.window + SLACK + math.ceil(float(plan.fps) * (budget + HISTORY_SECONDS))
        yield Live(plan, renderer, budget, cost, tracer or NullTracer())

