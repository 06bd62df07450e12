"""The frame step for one arriving row (docs/design.md 3), with the template held in memory.

Output frame ``i`` is row ``i``'s: template frame ``t(i)`` of the job's schedule, its rectangle, and the window
of rows around ``i`` (:meth:`composer.live.reader.RowHistory.window`). The work is
:class:`composer.rendering.step.FrameStep`'s, one frame at a time (a batch of one: batching would hold a row
back until the next ones came).
"""

from __future__ import annotations

import numpy as np
import psutil

from composer.errors import JobError, StageError
from composer.inputs.plan import Plan
from composer.inputs.schedule import period, schedule
from composer.live.clock import now
from composer.live.reader import RowHistory
from composer.live.stats import FrameRecord
from composer.model.session import Model, NonFiniteOutput
from composer.rendering.step import FrameStep, ModelInputs
from composer.runtime.trace import NullTracer

WARM_UP = 3  # frames rendered before the stream starts; the last one's time is the model's cost


def check_fits(plan: Plan) -> None:
    """Refuse a template whose decoded frames do not fit the memory a render's cache may take (``[run]
    memory_budget``, else ``memory_fraction`` of the memory available now): a stream revisits every frame
    for as long as it runs, so live holds them all rather than decoding them again in real time.

    Raises:
        JobError: the template is too large, naming its size and the allowance.
    """
    source, run = plan.source, plan.job.run
    needed = source.count * source.width * source.height * 3
    allowed = run.memory_budget or int(psutil.virtual_memory().available * run.memory_fraction)
    if needed > allowed:
        key = "run.memory_budget" if run.memory_budget else "run.memory_fraction"
        raise JobError(f"{plan.job.template.source}: {source.count} frames of {source.width}x{source.height} take "
                       f"{needed / 2**20:.0f} MiB decoded, and composer live holds the whole template in memory; "
                       f"{key} allows {allowed / 2**20:.0f} MiB (use a shorter template, or raise {key})")


class LiveTemplate:
    """The template's frames in memory, their crops as they are first needed, and the schedule of its frames."""

    def __init__(self, plan: Plan) -> None:
        loop = plan.job.run.loop
        check_fits(plan)
        self.frames = list(plan.source.frames())
        self.rects = plan.rects
        cycle = period(len(self.frames), loop)
        if cycle is None:
            raise JobError(f"run.loop = \"{loop}\" ends with the template; a live stream has no end: use "
                           "\"pingpong\" or \"repeat\"")
        self._schedule = schedule(cycle, len(self.frames), loop)
        self._crops: dict[int, np.ndarray] = {}

    def index(self, i: int) -> int:
        """Template frame ``t(i)`` of output frame ``i``."""
        return int(self._schedule[i % len(self._schedule)])

    def frame(self, t: int) -> np.ndarray:
        """Template frame ``t`` as decoded (shared: copy before writing into it)."""
        return self.frames[t]

    def crop(self, t: int, step: FrameStep) -> np.ndarray | None:
        """Template frame ``t``'s crop (3.3), made once; None where the frame passes through."""
        rect = self.rects.get(t)
        if rect is None:
            return None
        if t not in self._crops:
            self._crops[t] = step.crop(self.frames[t], rect)
        return self._crops[t]


class LiveRenderer:
    """Renders row ``i``'s output frame. Owns the model session and its inputs: one thread calls it.

    Args:
        plan: the job's plan (template, rectangles; its features are the rows' history instead).
        template: the template in memory.
        model: the job's model.
        history: the rows read so far.
        tracer: records each frame's batch, infer and composite spans.
    """

    def __init__(self, plan: Plan, template: LiveTemplate, model: Model, history: RowHistory,
                 tracer: NullTracer | None = None) -> None:
        self.window = plan.job.features.window if plan.job.features is not None else 1
        self.step = FrameStep(plan, windows=lambda i: history.window(i, self.window))
        self.template, self.model, self.history = template, model, history
        self.inputs = ModelInputs.allocate(plan.job.model, model, 1)
        self.tracer = tracer or NullTracer()

    def render(self, i: int, record: FrameRecord) -> np.ndarray:
        """Output frame ``i``, its times noted in ``record`` (from ``taken`` to ``composited``)."""
        record.taken = now()
        t = self.template.index(i)
        frame, crop, rect = self.template.frame(t), self.template.crop(t, self.step), self.template.rects.get(t)
        if crop is None or rect is None:
            record.batched = record.inferred = record.composited = now()
            return frame
        self.step.prepare(i, crop, self.inputs, 0)  # the image, and the window of the rows read so far
        record.batched = now()
        prediction = self.step.infer(self.model, self.inputs, [i])[0]
        record.inferred = now()
        out = self.step.paste(frame, crop, prediction, rect)
        record.composited = now()
        for stage, start, end in (("prepare", record.taken, record.batched), ("infer", record.batched,
                                  record.inferred), ("composite", record.inferred, record.composited)):
            self.tracer.add(stage, start, end, i)
        return out

    def frame_seconds(self) -> float:
        """The cost of one frame, timed on frame 0 with zero features after a warm-up (:data:`WARM_UP` frames)."""
        record, tracer, self.tracer = FrameRecord(0, now()), self.tracer, NullTracer()
        seconds = 0.0
        try:
            for _ in range(WARM_UP):
                began = now()
                try:
                    self.render(0, record)
                except StageError as exc:
                    if not isinstance(exc.cause, NonFiniteOutput):
                        raise  # zeros are no frame: a model may divide by an image's spread, which zeros lack
                seconds = now() - began
        finally:
            self.tracer = tracer
        return seconds
