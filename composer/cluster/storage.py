"""Shared storage, checked before a cluster renders: every worker must see the job's inputs and its output
folders at the same paths as the client, and the same composer."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from composer.config.job import Job
from composer.errors import JobError, OutputError
from composer.version import __version__

if TYPE_CHECKING:
    from distributed import Client

_TOKEN = ".composer-cluster-{}"


def job_inputs(job: Job) -> list[Path]:
    """The files and folders a segment task reads (the audio is read by the client alone)."""
    paths = [job.template.source, job.template.rects, job.model.path]
    if job.features is not None and job.features.path is not None:
        paths.append(job.features.path)
    return paths


def output_folders(job: Job) -> list[Path]:
    """The folders segment tasks write into: the images' folder, and the video's (whose hidden parts folder
    takes the segments)."""
    folders = []
    if job.output.frames is not None:
        folders.append(job.output.frames)
    if job.output.video is not None:
        folders.append(job.output.video.parent)
    return folders


def look(inputs: list[str], tokens: list[str]) -> tuple[str | None, str]:
    """Run on a worker: the first path it cannot see (an input, or an output folder whose token file written by
    the client is not there, or that it cannot write), or None; and its composer version."""
    for path in inputs:
        if not os.path.exists(path):
            return path, __version__
    for token in tokens:
        folder = os.path.dirname(token)
        if not os.path.exists(token) or not os.access(folder, os.W_OK):
            return folder, __version__
    return None, __version__


@contextlib.contextmanager
def _tokens(folders: list[Path]) -> Iterator[list[str]]:
    """A uniquely named empty file in each folder (created), removed on exit."""
    name = _TOKEN.format(uuid.uuid4().hex)
    made: list[Path] = []
    try:
        for folder in folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / name).touch()
            except OSError as exc:
                raise OutputError(f"{folder}: cannot write there: {exc.strerror or exc}") from exc
            made.append(folder / name)
        yield [str(token) for token in made]
    finally:
        for token in made:
            token.unlink(missing_ok=True)


def check_workers(client: Client, job: Job) -> int:
    """Refuse, naming the worker and the path, unless every worker sees the job's inputs and output folders
    (the same storage: a file the client writes there is seen) and runs this composer. Returns the workers.

    Raises:
        JobError: a worker cannot see a path, or runs another composer.
    """
    with _tokens(output_folders(job)) as tokens:
        answers = client.run(look, [str(p) for p in job_inputs(job)], tokens)
    for worker, (missing, version) in sorted(answers.items()):
        if missing is not None:
            raise JobError(f"run.cluster: worker {worker} cannot see {missing}: the job's inputs and output "
                           "folders must be on storage every worker shares, at the same paths")
        if version != __version__:
            raise JobError(f"run.cluster: worker {worker} runs composer {version}, this is {__version__}: every "
                           "worker needs the same composer and libraries for the same bytes")
    return len(answers)
