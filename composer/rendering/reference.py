"""The reference renderer: docs/design.md section 3 as a plain per-frame loop.

Every configuration of the renderers must produce exactly these frames. It holds the whole template in RAM and
does one thing at a time, which also makes it the benchmarks' sequential baseline.
"""

from __future__ import annotations

import logging
import time

from composer.config.job import Job
from composer.inputs.plan import open_plan
from composer.output.lock import lock_outputs
from composer.output.outputs import open_outputs
from composer.rendering.observer import NullObserver, Observer, PeakMemory, RenderStats
from composer.rendering.step import FrameStep, ModelInputs

log = logging.getLogger("composer")


def render_reference(job: Job, observer: Observer | None = None, resume: bool = False, frames: int | None = None,
                     overwrite: bool = False) -> RenderStats:
    """Render ``job`` one frame at a time and write its outputs (``resume``, ``frames``, ``overwrite``: as
    :func:`composer.render`)."""
    observer = observer or NullObserver()
    memory = PeakMemory()
    with lock_outputs(job), open_plan(job, frames) as plan:
        model = plan.open_model()
        log.info("model %s runs on %s", job.model.path.name, model.provider)
        step, inputs = FrameStep(plan), ModelInputs.allocate(job.model, model, 1)
        began = time.perf_counter()
        with open_outputs(plan, resume, overwrite=overwrite) as outputs:
            decoded = list(plan.source.frames())
            observer.started(plan.count - outputs.start)
            for i in range(outputs.start, plan.count):
                t = int(plan.schedule[i])
                frame, rect = decoded[t], plan.rects.get(t)
                if rect is not None:
                    crop = step.crop(frame, rect)
                    step.prepare(i, crop, inputs, 0)
                    frame = step.paste(frame, crop, step.infer(model, inputs, [i])[0], rect)
                step.save(i, frame, outputs.images)
                if outputs.video is not None:
                    outputs.video.write(frame)
                observer.frame_done(i)
            observer.finished()
        seconds = time.perf_counter() - began
    return RenderStats(frames=plan.count - outputs.start, seconds=seconds, peak_rss=memory.peak)
