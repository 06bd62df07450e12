"""A job's inputs opened and checked against each other before the first frame is rendered."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from composer.config import defaults
from composer.config.job import Job
from composer.config.limits import MAX_FPS, MIN_FPS
from composer.errors import JobError
from composer.inputs.audio_features import cached_features, features_cache
from composer.inputs.digest import remembered_digests
from composer.inputs.features import load_features
from composer.inputs.rects import Rects, load_rects
from composer.inputs.schedule import schedule
from composer.inputs.sources import TemplateSource, open_template
from composer.model.session import Model

DEFAULT_FPS = Fraction(25)
log = logging.getLogger("composer")


@dataclass(frozen=True)
class Plan:
    """Everything a renderer needs, checked: the template, its rectangles, the features and the schedule."""

    job: Job
    source: TemplateSource
    rects: Rects
    features: np.ndarray | None
    schedule: np.ndarray  # template frame of each output frame
    fps: Fraction
    preview: bool = False  # only the first output frames of the job are rendered
    features_file: Path | None = None  # the .npy the features made from audio were read from (docs/design.md 1.1)

    @property
    def count(self) -> int:
        """Number of output frames."""
        return len(self.schedule)

    def open_model(self, threads: int | None = None) -> Model:
        """The job's model, checked against the features, on ``threads`` intra-op threads.

        ``threads`` None: ``[run] threads``, else every usable core (one session doing all the work, as the
        reference loop and the seed designs run it).
        """
        features = self.job.features
        return Model(
            self.job.model,
            feature_row_shape=tuple(self.features.shape[1:]) if self.features is not None else None,
            window=features.window if features is not None else 1,
            threads=threads or self.job.run.threads or defaults.usable_cores(),
            batch=self.job.run.batch,
        )


@contextlib.contextmanager
def open_template_inputs(job: Job) -> Iterator[tuple[TemplateSource, Rects, Fraction]]:
    """The job's template (closed on exit), its rectangles checked against it, and the output's frame rate: what
    every render opens first, and all a live run reads from the job's files.

    Raises:
        JobError: the rectangles are missing, malformed, too few or outside the frames.
        SourceError: the template cannot be opened.
    """
    with open_template(job.template.source) as source:
        rects = load_rects(job.template.rects, source.count)
        rects.check_bounds(source.width, source.height, job.template.rects)
        yield source, rects, output_fps(job, source)


@contextlib.contextmanager
def open_plan(job: Job, frames: int | None = None, *, scan_features: bool = True) -> Iterator[Plan]:
    """Open and check a job's inputs; the template is closed on exit.

    ``scan_features`` False: the features file's values are not checked for NaN (a cluster task's client has
    checked them; each of a long job's hundreds of tasks would read the whole file again).

    ``frames``: render only the first output frames (a preview), each as the whole job renders it. Features made
    from audio (``features.audio``) are encoded here, or read from the cache beside the output.

    Raises:
        JobError: an input is missing, malformed or does not fit the others.
        SourceError: the template cannot be opened.
    """
    if job.output.frames is None and job.output.video is None:
        raise JobError("job key output: nothing to write; set output.frames and/or output.video")
    spec = job.features
    if spec is not None and spec.path is None and spec.audio is None:
        raise JobError("job key features.path: missing; features.row_shape alone serves composer live, which reads "
                       "the rows from its standard input")
    features = load_features(spec.path, scan_features) if spec is not None and spec.path is not None else None
    features_file = None
    with remembered_digests(), open_template_inputs(job) as (source, rects, fps):
        if spec is not None and spec.audio is not None:
            features_file = cached_features(spec, fps, features_cache(job))
            features = load_features(features_file)
        count = len(features) if features is not None else source.count
        preview = frames is not None and frames < count
        if frames is not None:
            count = min(count, frames)
        order = schedule(count, source.count, job.run.loop)
        yield Plan(job=job, source=source, rects=rects, features=features, schedule=order, fps=fps,
                   preview=preview, features_file=features_file)


def output_fps(job: Job, source: TemplateSource) -> Fraction:
    """The output's frame rate: ``output.fps``, else the template's own, else :data:`DEFAULT_FPS`.

    Raises:
        JobError: the template's own rate is out of range (``output.fps`` is checked with the job).
    """
    fps = job.output.fps or source.fps or DEFAULT_FPS
    if not MIN_FPS <= fps <= MAX_FPS:
        raise JobError(f"{job.template.source}: the template's frame rate {fps} is outside {MIN_FPS} to "
                       f"{MAX_FPS} fps; set output.fps")
    return fps
