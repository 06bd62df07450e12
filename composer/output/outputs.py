"""The job's outputs opened together: numbered images and/or an H.264 video, fresh or resumed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from composer.config.defaults import EncoderLayout, encoder_layout
from composer.errors import Interrupted
from composer.inputs.plan import Plan
from composer.output.resume import fingerprint, mark_finished, mark_started, resumable, resume_point
from composer.output.video_segments import SegmentedVideoSink
from composer.output.writers import ImageFolderSink
from composer.runtime import signals
from composer.runtime.threads import Supervisor


@dataclass(frozen=True)
class Outputs:
    """Open sinks, and the first output frame this run renders (after the frames an earlier run finished).

    ``images.write`` is thread-safe; ``video.write`` takes frames in order from one thread.
    """

    images: ImageFolderSink | None
    video: SegmentedVideoSink | None
    start: int = 0


@contextlib.contextmanager
def open_outputs(plan: Plan, resume: bool = False, run: Supervisor | None = None,
                 layout: EncoderLayout | None = None) -> Iterator[Outputs]:
    """Open the sinks a plan asks for; each output takes its final name only if the block ends cleanly.

    The caller holds the outputs' locks (:func:`composer.output.lock.lock_outputs`, which checks the outputs
    against the inputs first). A KeyboardInterrupt that leaves the block is an :class:`~composer.errors.Interrupted`
    saying whether the outputs can be resumed; once they are complete, a signal stops nothing any more
    (:func:`composer.runtime.signals.work_done`).

    Args:
        plan: the checked inputs.
        resume: continue an interrupted run of the same job instead of starting over.
        run: the render's supervisor, which the video's encoder and audio threads join.
        layout: the video's encoders (None: :func:`composer.config.defaults.encoder_layout`).

    Raises:
        JobError: ``resume`` is set but there is no interrupted run of this job, or it was of other inputs.
        OutputError: an output cannot be created.
    """
    job, spec = plan.job, plan.job.output
    layout = layout or encoder_layout(job)
    print_ = fingerprint(job, plan.count)
    try:
        start = resume_point(job, plan.count, print_) if resume else 0
        with contextlib.ExitStack() as stack:
            images = video = None
            if spec.frames is not None:
                images = stack.enter_context(ImageFolderSink(spec.frames, spec.format, spec.quality))
            if spec.video is not None:
                video = stack.enter_context(
                    SegmentedVideoSink(spec.video, plan.fps, plan.source.width, plan.source.height,
                                       audio=spec.audio, crf=spec.crf, preset=spec.preset,
                                       encoders=layout.encoders, start=start, frames=plan.count, run=run)
                )
            mark_started(job, plan.count, print_, fresh=not resume)
            yield Outputs(images=images, video=video, start=start)
            if video is not None:
                video.join()  # the final file; its segments and the manifests stay until the work is done
            signals.work_done()
    except BaseException as exc:
        interrupt = signals.interrupt_behind(exc)
        if interrupt is None:
            raise
        raise Interrupted(resumable(job, print_)) from interrupt
    mark_finished(job)
