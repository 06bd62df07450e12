"""The job's outputs opened together: numbered images and/or an H.264 video, fresh or resumed."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from composer.config.defaults import EncoderLayout, encoder_layout
from composer.errors import Interrupted
from composer.inputs.audio import audio_seconds
from composer.inputs.plan import Plan
from composer.output.resume import (
    check_stale_images,
    fingerprint,
    mark_finished,
    mark_started,
    resumable,
    resume_point,
)
from composer.output.video_segments import SegmentedVideoSink
from composer.output.writers import ImageFolderSink
from composer.runtime import signals
from composer.runtime.threads import Supervisor

log = logging.getLogger("composer")


@dataclass(frozen=True)
class Outputs:
    """Open sinks, and the first output frame this run renders (after the frames an earlier run finished).

    ``images.write`` is thread-safe; ``video.write`` takes frames in order from one thread.
    """

    images: ImageFolderSink | None
    video: SegmentedVideoSink | None
    start: int = 0
    resumed: bool = False  # continuing an interrupted run: segments it finished past ``start`` may be skipped


@contextlib.contextmanager
def open_outputs(plan: Plan, resume: bool = False, run: Supervisor | None = None,
                 layout: EncoderLayout | None = None, overwrite: bool = False) -> Iterator[Outputs]:
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
        overwrite: remove the numbered images of an earlier run that this one would not overwrite, instead of
            refusing to start (:func:`composer.output.resume.check_stale_images`).

    Raises:
        JobError: ``resume`` is set but there is no interrupted run of this job, or it was of other inputs; or,
            without ``resume``, the frames folder holds numbered images this job does not write.
        OutputError: an output cannot be created.
    """
    job, spec = plan.job, plan.job.output
    layout = layout or encoder_layout(job)
    print_ = fingerprint(job, plan.count, plan.features_file)
    try:
        start = resume_point(job, plan.count, print_) if resume else 0
        if not resume:
            check_stale_images(job, plan.count, overwrite)
        if spec.video is not None and spec.audio is not None and not plan.preview:
            _warn_of_length(spec.audio, plan.count, plan.fps)
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
            yield Outputs(images=images, video=video, start=start, resumed=resume)
            if video is not None:
                video.join()  # the final file; its segments and the manifests stay until the work is done
            signals.work_done()
    except BaseException as exc:
        interrupt = signals.interrupt_behind(exc)
        if interrupt is None:
            raise
        raise Interrupted(resumable(job, print_)) from interrupt
    mark_finished(job)


def _warn_of_length(audio: Path, frames: int, fps: Fraction) -> None:
    """One line when the video is more than a frame longer or shorter than its audio (the wrong audio file, or
    features of other audio)."""
    seconds = audio_seconds(audio)
    video = float(frames / fps)
    if seconds is not None and abs(seconds - video) > float(1 / fps):
        log.warning("%s: the audio lasts %.2f s and the video %.2f s (%d frames at %s fps); the video keeps the "
                    "audio's first %.2f s", audio, seconds, video, frames, fps, min(seconds, video))
