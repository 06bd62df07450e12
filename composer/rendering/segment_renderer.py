"""The segment renderer: each model lane renders whole segments, every frame start to finish on its own thread.

::

    [preloader] --the whole template--> [lane 0]: segment 0, 2, ... -> images, part-000000.mp4, ...
                                        [lane 1]: segment 1, 3, ... -> images, part-000001.mp4, ...

A lane takes the next segment of output frames (:func:`segment_units`: the video's segments of
:data:`~composer.output.resume.SEGMENT_FRAMES` frames) and does for each frame what the reference loop does: crop,
infer (``batch`` frames a call), composite, save the image and encode it into the segment's own x264. The
segments are the video's, fixed by the job's length alone, and each is encoded on one x264 thread whoever
renders it, so the video is the same with any number of lanes, with the pipeline and with the reference loop.
A frame seldom changes threads, so nothing waits on a queue and each frame's data stays in one core's cache: on a
CPU this is what one copy of the sequential loop per core does.

A lane with nothing of its own to render helps another: at the end of the job, when every range is taken, and
at its start, while the template frames its range needs are still being decoded (a ping-pong schedule's second
segment needs the template's last frame first). It renders the next unclaimed frames of the other lane's range
and converts them for x264; that lane encodes them in order, so the video is the same whoever renders a frame.
Without it one lane rendered alone for the last 6% of the heavy benchmark's 1,000-frame render, and the light
model's 200-frame job waited half its time on the decoder with one lane idle.
:func:`composer.rendering.layout.choose_layout` chooses between this renderer and the pipeline.

It needs the whole template in the cache, since the lanes work a segment or more apart; a template that does
not fit is rendered by the pipeline. The first error stops every lane through the run's one stop event and is
re-raised once all are joined; a segment a lane was encoding is dropped, and every finished segment is kept for
``--resume``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from composer.errors import OutputError, StageError
from composer.inputs.features import release
from composer.inputs.plan import Plan
from composer.model.session import Model
from composer.output.outputs import Outputs
from composer.output.resume import SEGMENT_FRAMES, segment_done
from composer.output.writers import VideoSink, converted_shape
from composer.rendering.memory import SPARE_FRAMES
from composer.rendering.observer import NullObserver, Observer
from composer.rendering.preload import Chunk, Preloader, Visit
from composer.rendering.step import FrameStep, ModelInputs
from composer.runtime.threads import Stopped, Supervisor, wait_for
from composer.runtime.trace import NullTracer

HELP_POLL = 0.005  # seconds an idle lane waits before it looks again for decoded frames to help with
RELEASE_FEATURES = 500  # output frames between releases of the features file's pages (flat memory)
_Step = tuple[str, "_Claim | None"]  # what a lane does next: "encode", "render" or "help" a claim; "done"
_Waiting = list[tuple[int, float, np.ndarray, np.ndarray, tuple[int, int, int, int]]]  # frames for the next model call


def segment_units(start: int, count: int, segment: int = SEGMENT_FRAMES) -> list[tuple[int, int]]:
    """Output frames ``start .. count-1`` cut into runs of ``segment`` frames (the first and last may be
    shorter), each ending on a multiple of ``segment``: a video's segments, however the run was resumed."""
    edges = [start, *range((start // segment + 1) * segment, count, segment), count]
    return [(a, b) for a, b in zip(edges, edges[1:]) if a < b]


class _Buffers:
    """One lane's reusable buffers: its model inputs, its output frame and the frame converted for x264."""

    def __init__(self, plan: Plan, model: Model, batch: int, video: bool) -> None:
        self.inputs = ModelInputs.allocate(plan.job.model, model, batch)
        width, height = plan.source.width, plan.source.height
        self.frame = np.empty((height, width, 3), np.uint8)
        self.i420 = np.empty(converted_shape(width, height), np.uint8) if video else None


class _Claim:
    """Output frames ``first .. stop-1`` of a taken range that a lane renders ahead of the range's encoder (a
    lane helping another, or the encoder itself while a helper holds the frames before): each waits, converted
    for x264 into a spare buffer, until the range's lane encodes it."""

    def __init__(self, first: int, stop: int) -> None:
        self.first, self.stop = first, stop
        self.done = False
        self.frames: list[np.ndarray] = []  # the converted frames, in order


class _Taken:
    """A range a lane has taken: ``front`` is its first frame that no lane has claimed yet; ``claims`` its
    frames rendered (or being rendered) ahead of its encoder, in order (only with a video)."""

    def __init__(self, first: int, stop: int) -> None:
        self.first, self.stop, self.front = first, stop, first
        self.claims: deque[_Claim] = deque()


class SegmentRenderer:
    """Renders a plan with one thread per model lane, each taking whole segments (:func:`segment_units`).

    A lane that has nothing to render (the job's last ranges are all taken) or whose next template frame is not
    decoded yet helps another: it renders the next unclaimed frames of that lane's range, saves their images and
    converts them for x264 into spare buffers (:data:`SPARE_FRAMES` per frame of batch), and the range's own
    lane encodes them in order. The video is the same whoever renders a frame.

    Args:
        plan: the checked inputs.
        lanes: one model session per thread.
        outputs: open sinks; the video sink must have no encoder threads of its own.
        batch: frames per model call.
        observer: told of each finished frame (under a lock: the lanes finish frames out of order).
        tracer: records the stages' spans.
        run: the render's supervisor, shared with the outputs' threads (None: the renderer's own).
    """

    def __init__(self, plan: Plan, lanes: Sequence[Model], outputs: Outputs, batch: int,
                 observer: Observer | None = None, tracer: NullTracer | None = None,
                 run: Supervisor | None = None) -> None:
        if not lanes:
            raise ValueError("the segment renderer needs at least one model lane")
        self.plan, self.lanes, self.outputs, self.batch = plan, tuple(lanes), outputs, batch
        self.step = FrameStep(plan)
        self.observer = observer or NullObserver()
        self.tracer = tracer or NullTracer()
        # a resumed run skips the segments an interrupted one finished out of order (a cluster's)
        self.ranges = [(a, b) for a, b in segment_units(outputs.start, plan.count)
                       if not (outputs.resumed and segment_done(plan.job, a, b))]
        self._next_range = 0  # the next range a lane takes
        self._taken: list[_Taken] = []  # ranges taken and not finished
        self._spare: list[np.ndarray] = []  # converted frames' buffers returned by the encoders
        self._unreserved = SPARE_FRAMES * batch  # spare buffers no claim holds
        self._cond = threading.Condition()  # guards the above and the observer
        self._supervisor = Supervisor(run)
        self.stop = self._supervisor.stop
        self.preloader = Preloader(plan.source, plan.rects, plan.job.model, plan.source.count,
                                   [Visit(0, outputs.start, plan.count)], self.stop, self.tracer)

    def run(self) -> None:
        """Render every output frame; returns when all are written, raises the first stage error."""
        self.observer.started(sum(b - a for a, b in self.ranges))
        if self.ranges:
            with self._supervisor:  # joins the lanes, stopping them first if a spawn is cut short
                self._supervisor.spawn("preload", self.preloader.run)
                for k, model in enumerate(self.lanes):
                    self._supervisor.spawn(f"segments-{k}", functools.partial(self._lane, model))
        if self.outputs.video is not None:
            self.outputs.video.frames_written = self.plan.count
        self.observer.finished()

    def _lane(self, model: Model) -> None:
        chunk = self.preloader.acquire(0)
        buffers = _Buffers(self.plan, model, self.batch, self.outputs.video is not None)
        video = self.outputs.video
        while (taken := self._take()) is not None:
            encoder = None
            try:
                if video is not None:
                    encoder = video.segment_encoder(taken.first // SEGMENT_FRAMES)
                self._own(model, chunk, buffers, taken, encoder)
                if encoder is not None:
                    with self.tracer.span("write_video", taken.stop - 1):
                        encoder.close()
                    encoder = None
            except (OutputError, OSError) as exc:
                raise StageError("write", f"frame {taken.first}", exc) from exc
            finally:
                if encoder is not None:
                    encoder.abort()  # a failed or stopped segment leaves no file
        while (step := self._next(self._help_step))[0] == "help":
            assert step[1] is not None  # a claim to help with
            self._help(model, chunk, buffers, step[1])

    def _next(self, step: Callable[[], _Step | None]) -> _Step:
        """Wait until ``step`` (called with ``_cond`` held) has something for this lane to do, and return it.
        Decoding is not notified here, so the wait looks again every :data:`HELP_POLL` seconds."""
        with self._cond:
            found = wait_for(self._cond, step, self.stop, HELP_POLL)
        assert found is not None  # wait_for returns the first true value
        return found

    def _take(self) -> _Taken | None:
        with self._cond:
            if self._next_range == len(self.ranges):
                return None
            self._next_range += 1
            taken = _Taken(*self.ranges[self._next_range - 1])
            self._taken.append(taken)
            return taken

    def _ready(self, i: int) -> bool:
        return self.preloader.is_loaded(0, int(self.plan.schedule[i]))

    def _claim(self, taken: _Taken) -> _Claim | None:
        """Claim up to ``batch`` decoded frames at ``taken``'s front, to be rendered ahead of its encoder (a
        spare buffer each, with a video); None when there are none. ``_cond`` held."""
        video = self.outputs.video is not None
        most = min(self.batch, taken.stop - taken.front, self._unreserved if video else self.batch)
        n = 0
        while n < most and self._ready(taken.front + n):
            n += 1
        if n == 0:
            return None
        claim = _Claim(taken.front, taken.front + n)
        taken.front += n
        if video:
            self._unreserved -= n
            taken.claims.append(claim)
        return claim

    def _claim_elsewhere(self, mine: _Taken | None) -> _Claim | None:
        """Claim frames of the taken range (not ``mine``) with the most left unclaimed. ``_cond`` held."""
        others = sorted((t for t in self._taken if t is not mine and t.front < t.stop),
                        key=lambda t: t.front - t.stop)
        return next((claim for other in others if (claim := self._claim(other)) is not None), None)

    def _help_step(self) -> _Step | None:
        """A lane with no range left: help another, or stop once every frame is claimed. ``_cond`` held."""
        if all(t.front == t.stop for t in self._taken):
            return "done", None
        claim = self._claim_elsewhere(None)
        return ("help", claim) if claim is not None else None

    def _own_step(self, taken: _Taken) -> _Step | None:
        """What the lane of ``taken`` does next (``_cond`` held), None to wait: encode the next frames if a lane
        rendered them ahead; while another lane renders them, render those after them ahead; else render its
        own next frames and encode them as they come, or, while those are not decoded, help another lane."""
        if taken.claims:
            head = taken.claims[0]
            if head.done:
                taken.claims.popleft()
                return "encode", head
            ahead = self._claim(taken)
            return ("help", ahead) if ahead is not None else None
        if taken.front == taken.stop:
            self._taken.remove(taken)
            self._cond.notify_all()
            return "done", None
        if self._ready(taken.front):
            own = _Claim(taken.front, min(taken.front + self.batch, taken.stop))
            taken.front = own.stop
            return "render", own
        claim = self._claim_elsewhere(taken)
        return ("help", claim) if claim is not None else None

    def _own(self, model: Model, chunk: Chunk, buffers: _Buffers, taken: _Taken, encoder: VideoSink | None) -> None:
        """Render and encode the frames of ``taken`` in order, with the other lanes' help (:meth:`_own_step`)."""
        while (step := self._next(functools.partial(self._own_step, taken)))[0] != "done":
            action, claim = step
            assert claim is not None
            if action == "encode":
                self._encode(claim, encoder)
            elif action == "render":
                self._render(model, chunk, buffers, claim, encoder)
            else:
                self._help(model, chunk, buffers, claim)

    def _help(self, model: Model, chunk: Chunk, buffers: _Buffers, claim: _Claim) -> None:
        """Render ``claim`` ahead of its range's encoder, which encodes it once it is done."""
        self._render(model, chunk, buffers, claim, None)
        with self._cond:
            claim.done = True
            self._cond.notify_all()

    def _encode(self, claim: _Claim, encoder: VideoSink | None) -> None:
        """Encode the frames of ``claim``, rendered ahead, and give their buffers back."""
        if encoder is not None:
            for i, i420 in zip(range(claim.first, claim.stop), claim.frames):
                try:
                    with self.tracer.span("write_video", i):
                        encoder.write_converted(i420)
                except Exception as exc:
                    raise StageError("write", f"frame {i}", exc) from exc
        with self._cond:
            self._spare.extend(claim.frames)
            self._unreserved += claim.stop - claim.first
            for i in range(claim.first, claim.stop):
                self.observer.frame_done(i)
            self._cond.notify_all()

    def _render(self, model: Model, chunk: Chunk, buffers: _Buffers, claim: _Claim, encoder: VideoSink | None) -> None:
        """Render the frames of ``claim`` in order: the frames with a rectangle ``batch`` to a model call, each
        pass-through frame once the frames before it are out. Each is encoded into ``encoder``; without one (and
        with a video), converted into a spare buffer of ``claim`` for its range's lane to encode."""
        plan, stop = self.plan, self.stop
        waiting: _Waiting = []  # index, when begun, frame, crop and rectangle of each
        loaded = 0
        for i in range(claim.first, claim.stop):
            if stop.is_set():
                raise Stopped
            if plan.features is not None and i % RELEASE_FEATURES == 0:
                release(plan.features)
            born = time.perf_counter()
            t = int(plan.schedule[i])
            if t >= loaded:
                loaded = self.preloader.loaded(0, t)
            frame = chunk.frames[t]
            assert frame is not None  # loaded() said so
            rect = plan.rects.get(t)
            if rect is None:
                self._flush(model, buffers, waiting, claim, encoder)
                self._finish(i, born, frame, claim, encoder, buffers)
                continue
            crop = chunk.crops[t]
            try:
                with self.tracer.span("prepare", i):
                    self.step.prepare(i, crop, buffers.inputs, len(waiting))
            except Exception as exc:
                raise StageError("prepare", f"frame {i}", exc) from exc
            waiting.append((i, born, frame, crop, rect))
            if len(waiting) == self.batch:
                self._flush(model, buffers, waiting, claim, encoder)
        self._flush(model, buffers, waiting, claim, encoder)

    def _flush(self, model: Model, buffers: _Buffers, waiting: _Waiting, claim: _Claim,
               encoder: VideoSink | None) -> None:
        """Infer the waiting frames in one call, then composite, save and encode each."""
        if not waiting:
            return
        n = len(waiting)
        with self.tracer.span("infer", waiting[0][0], n):
            predictions = self.step.infer(model, buffers.inputs, [w[0] for w in waiting])
        for (i, born, frame, crop, rect), prediction in zip(waiting, predictions):
            try:
                with self.tracer.span("composite", i):
                    out = self.step.paste(frame, crop, prediction, rect, out=buffers.frame)
            except Exception as exc:
                raise StageError("composite", f"frame {i}", exc) from exc
            self._finish(i, born, out, claim, encoder, buffers)
        waiting.clear()

    def _finish(self, i: int, born: float, frame: np.ndarray, claim: _Claim, encoder: VideoSink | None,
                buffers: _Buffers) -> None:
        """Save frame ``i`` as an image and encode it into ``encoder`` or convert it into a spare buffer of
        ``claim``, as the job asks."""
        video = self.outputs.video
        ahead = encoder is None and video is not None  # its range's lane encodes it later
        try:
            if self.outputs.images is not None:
                with self.tracer.span("write_image", i):
                    self.step.save(i, frame, self.outputs.images)
            if encoder is not None:
                assert buffers.i420 is not None
                with self.tracer.span("write_video", i):
                    encoder.write_converted(self.step.convert(frame, encoder.width, encoder.height, buffers.i420))
            elif video is not None:
                with self._cond:
                    spare = self._spare.pop() if self._spare else None
                if spare is None:
                    spare = np.empty(converted_shape(video.width, video.height), np.uint8)
                with self.tracer.span("write_video", i):
                    claim.frames.append(self.step.convert(frame, video.width, video.height, spare))
        except Exception as exc:
            raise StageError("write", f"frame {i}", exc) from exc
        self.tracer.add("latency", born, time.perf_counter(), i)
        if not ahead:
            with self._cond:
                self.observer.frame_done(i)
