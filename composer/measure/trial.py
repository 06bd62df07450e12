"""The scratch job that measuring renders: the job cut to its first frames, its outputs in a scratch folder beside
the job's own, removed afterwards, so that measuring never touches a finished render."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from composer.config.job import Job
from composer.inputs.audio_features import encoded_job
from composer.inputs.features import load_features
from composer.inputs.plan import output_fps
from composer.inputs.sources import open_template

__all__ = ["scratch_folder", "trial_job"]


@contextlib.contextmanager
def scratch_folder(job: Job) -> Iterator[Path]:
    """A temporary folder beside the job's outputs (same disk, so writes cost what they will), removed after."""
    target = job.output.frames or job.output.video
    parent = target.parent if target is not None else Path(tempfile.gettempdir())
    try:
        parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".composer-measure-", dir=parent))
    except OSError:
        folder = Path(tempfile.mkdtemp(prefix="composer-measure-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def trial_job(job: Job, frames: int | None, folder: Path) -> Job:
    """The job cut to its first ``frames`` output frames, writing its outputs under ``folder``.

    The cut needs a ``[features]`` section (the features set the number of output frames): it writes the
    first rows to ``folder``. Without one, the job keeps all its output frames.
    """
    output = dataclasses.replace(
        job.output,
        frames=folder / "frames" if job.output.frames is not None else None,
        video=folder / "video.mp4" if job.output.video is not None else None,
    )
    if job.features is not None and job.features.audio is not None:  # encoded once, beside the job's own output
        with open_template(job.template.source) as source:
            job = encoded_job(job, output_fps(job, source))
    features = job.features
    if features is not None and features.path is not None and frames is not None:
        rows = load_features(features.path)
        if frames < len(rows):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "features.npy"
            np.save(path, np.asarray(rows[:frames]), allow_pickle=False)
            features = dataclasses.replace(features, path=path)
    return dataclasses.replace(job, output=output, features=features)
