"""A job's inputs opened and checked against each other before the first frame is rendered."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from composer.config import defaults
from composer.config.job import Job
from composer.config.limits import MAX_FPS, MIN_FPS
from composer.errors import JobError
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
def open_plan(job: Job) -> Iterator[Plan]:
    """Open and check a job's inputs; the template is closed on exit.

    Raises:
        JobError: an input is missing, malformed or does not fit the others.
        SourceError: the template cannot be opened.
    """
    if job.output.frames is None and job.output.video is None:
        raise JobError("job key output: nothing to write; set output.frames and/or output.video")
    features = load_features(job.features.path) if job.features is not None else None
    with open_template(job.template.source) as source:
        rects = load_rects(job.template.rects, source.count)
        rects.check_bounds(source.width, source.height, job.template.rects)
        count = len(features) if features is not None else source.count
        order = schedule(count, source.count, job.run.loop)
        fps = job.output.fps or source.fps or DEFAULT_FPS
        if not MIN_FPS <= fps <= MAX_FPS:  # a template's own rate; output.fps is checked with the job
            raise JobError(f"{job.template.source}: the template's frame rate {fps} is outside {MIN_FPS} to "
                           f"{MAX_FPS} fps; set output.fps")
        yield Plan(job=job, source=source, rects=rects, features=features, schedule=order, fps=fps)
