"""Interrupted runs and where to resume them.

A run leaves a small manifest beside each output (``.composer-run.json`` in the frames folder, ``manifest.json``
in the video's parts folder) holding a fingerprint of the job: every setting that changes the output and the
size and modification time of every input. ``--resume`` continues only a run of the same job, from the
first output frame that is not safely on disk: the first missing image, or the start of the first missing
video segment.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from composer.config.job import Job
from composer.errors import JobError, OutputError

SEGMENT_FRAMES = 100  # frames per video segment: what an interrupt can lose, at most, and the encoders' unit
MANIFEST = ".composer-run.json"
_PART = "part-{:06d}.mp4"


def parts_folder(video: Path) -> Path:
    """The hidden folder holding a video's finished segments until they are joined."""
    return video.parent / f".{video.name}.parts"


def part_path(folder: Path, index: int) -> Path:
    """Segment ``index`` of a parts folder."""
    return folder / _PART.format(index)


def _stat(path: Path) -> Sequence[object]:
    if path.is_dir():
        return sorted([e.name, e.stat().st_size, e.stat().st_mtime_ns] for e in os.scandir(path) if e.is_file())
    try:
        info = path.stat()
    except OSError:
        return ["missing"]
    return [info.st_size, info.st_mtime_ns]


def fingerprint(job: Job, count: int) -> str:
    """A digest of everything that decides the output frames: settings, input files and frame count."""
    inputs = [job.template.source, job.template.rects, job.model.path]
    inputs += [job.features.path] if job.features is not None else []
    inputs += [job.output.audio] if job.output.audio is not None else []
    settings = {
        "template": asdict(job.template),
        "features": asdict(job.features) if job.features is not None else None,
        "model": asdict(job.model),
        "composite": asdict(job.composite),
        "output": asdict(job.output),
        "loop": job.run.loop,
        "count": count,
        "segment": SEGMENT_FRAMES,
        "files": {str(p): _stat(p) for p in inputs},
    }
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _read_manifest(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text())["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_manifest(path: Path, digest: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"fingerprint": digest, "tool": "composer"}))
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot write the run manifest: {exc.strerror or exc}") from exc


def _check(manifest: Path, digest: str, where: Path) -> None:
    found = _read_manifest(manifest)
    if found is None:
        raise JobError(f"{where}: nothing to resume (no interrupted run of this job); run without --resume")
    if found != digest:
        raise JobError(
            f"{where}: the interrupted run there was of a different job or different inputs; "
            "run without --resume to start over"
        )


def resume_point(job: Job, count: int, digest: str) -> int:
    """The first output frame an interrupted run of ``job`` still has to render.

    Raises:
        JobError: there is no interrupted run of this job to resume.
    """
    points = []
    if job.output.frames is not None:
        _check(job.output.frames / MANIFEST, digest, job.output.frames)
        suffix = job.output.format
        points.append(next((i for i in range(count) if not (job.output.frames / f"{i:06d}.{suffix}").exists()),
                           count))
    if job.output.video is not None:
        folder = parts_folder(job.output.video)
        _check(folder / "manifest.json", digest, job.output.video)
        segments = 0
        while part_path(folder, segments).exists():
            segments += 1
        points.append(min(count, segments * SEGMENT_FRAMES))
    start = min(points)
    if job.output.video is not None:
        start -= start % SEGMENT_FRAMES  # a video resumes at a segment boundary
    return start


def mark_started(job: Job, digest: str, start: int) -> None:
    """Record the run beside its outputs; a fresh run (``start == 0``) clears old video segments."""
    if job.output.frames is not None:
        _write_manifest(job.output.frames / MANIFEST, digest)
    if job.output.video is not None:
        folder = parts_folder(job.output.video)
        if start == 0 and folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        _write_manifest(folder / "manifest.json", digest)


def mark_finished(job: Job) -> None:
    """Remove the manifests of a finished run (the video's parts folder is removed by its sink)."""
    if job.output.frames is not None:
        (job.output.frames / MANIFEST).unlink(missing_ok=True)
