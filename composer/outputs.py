"""The job's outputs opened together: numbered images and/or an H.264 video."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from composer.plan import Plan
from composer.writers import ImageFolderSink, VideoSink


@dataclass(frozen=True)
class Outputs:
    """Open sinks. ``images.write`` is thread-safe; ``video.write`` takes frames in order from one thread."""

    images: ImageFolderSink | None
    video: VideoSink | None


@contextlib.contextmanager
def open_outputs(plan: Plan) -> Iterator[Outputs]:
    """Open the sinks a plan asks for; each output takes its final name only if the block ends cleanly."""
    spec = plan.job.output
    with contextlib.ExitStack() as stack:
        images = video = None
        if spec.frames is not None:
            images = stack.enter_context(ImageFolderSink(spec.frames, spec.format, spec.quality))
        if spec.video is not None:
            video = stack.enter_context(
                VideoSink(spec.video, plan.fps, plan.source.width, plan.source.height, audio=spec.audio,
                          crf=spec.crf, preset=spec.preset)
            )
        yield Outputs(images=images, video=video)
