"""``composer.render``: a job's inputs opened, its layout chosen, its renderer run, its outputs written."""

from __future__ import annotations

import logging
import time

from composer.config.job import Job
from composer.inputs.plan import open_plan
from composer.output.lock import lock_outputs
from composer.output.outputs import open_outputs
from composer.output.resume import SEGMENT_FRAMES
from composer.rendering.layout import open_render
from composer.rendering.observer import Observer, PeakMemory, RenderStats
from composer.rendering.pipeline import Pipeline
from composer.rendering.segment_renderer import SegmentRenderer
from composer.runtime.threads import Supervisor, one_opencv_thread
from composer.runtime.trace import NullTracer

log = logging.getLogger("composer")


def render(job: Job, observer: Observer | None = None, tracer: NullTracer | None = None,
           resume: bool = False, frames: int | None = None, overwrite: bool = False) -> RenderStats:
    """Render ``job`` and write its outputs, with the renderer and settings of
    :func:`composer.rendering.layout.choose_layout`.

    Args:
        job: the job.
        observer: told of each finished frame.
        tracer: records the stages' spans.
        resume: continue an interrupted run of the same job from where it stopped.
        frames: render only the first output frames (a preview), each as the whole job renders it.
        overwrite: remove the numbered images an earlier, longer run left in the frames folder instead of
            refusing to start.

    Returns:
        The frames rendered, the time, the peak memory and the layout the render ran with.

    Raises:
        ComposerError: a bad input (before the first frame, where it can be found then) or a stage failure;
            an OutputError when another run writes the same outputs.
        Interrupted: Ctrl-C (or SIGTERM, through the command line) stopped the render once its outputs were open.
    """
    memory = PeakMemory()
    with lock_outputs(job), open_plan(job, frames) as plan:
        layout, lanes = open_render(plan)
        if job.output.video is not None:
            log.info("video: %s, %d-frame segments", layout.encoders.text(), SEGMENT_FRAMES)
        began = time.perf_counter()
        run = Supervisor()  # one stop event and one first error for the renderer's and the outputs' threads
        with one_opencv_thread(), open_outputs(plan, resume, run, layout.encoders, overwrite=overwrite) as outputs:
            if layout.segments:
                SegmentRenderer(plan, lanes, outputs, layout.batch, observer, tracer, run).run()
            else:
                Pipeline(plan, lanes, outputs, layout, observer, tracer, run).run()
        seconds = time.perf_counter() - began
    return RenderStats(frames=plan.count - outputs.start, seconds=seconds, peak_rss=memory.peak, layout=layout)
