"""composer: render videos in which an ONNX model repaints one region of every frame.

A job file (:func:`load_job`) names a template video, a rectangle per template frame, a model and the
outputs. :func:`render` runs the processor (chunked preloader, batched inference, pooled compositing, async
writer); :func:`render_reference` is the plain per-frame loop every configuration must match bit for bit.
"""

from __future__ import annotations

from composer.config.job import Job, load_job
from composer.errors import ComposerError, JobError, ModelError, OutputError, SourceError
from composer.rendering.observer import NullObserver, Observer, ProgressBar, RenderStats
from composer.rendering.reference import render_reference
from composer.rendering.render import render
from composer.version import __version__

__all__ = [
    "ComposerError",
    "Job",
    "JobError",
    "ModelError",
    "NullObserver",
    "Observer",
    "OutputError",
    "ProgressBar",
    "RenderStats",
    "SourceError",
    "__version__",
    "load_job",
    "render",
    "render_reference",
]
