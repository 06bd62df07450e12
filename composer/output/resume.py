"""Interrupted runs, and where to resume them: exactly, or not at all.

A run leaves a small manifest beside each output (``.composer-run.json`` in the frames folder, ``manifest.json``
in the video's parts folder) holding the job's :func:`fingerprint`: the content of every input, every setting that
changes a byte of the output, the frame count and composer's version. ``--resume`` continues only a run whose
fingerprint is this job's, from the first output frame that is not safely on disk: the first missing image, or
the start of the first missing video segment. Otherwise it refuses, naming what changed.

A fresh run refuses a frames folder holding numbered images it would not write (an earlier, longer run's),
unless ``--overwrite``; it then removes what an earlier run left where it writes (the numbered images, the
video's parts) and records its manifests: every image and segment found beside a manifest was written by a
run of that fingerprint, so a resumed result never mixes two jobs' frames.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

from composer.config.job import Job
from composer.errors import JobError, OutputError
from composer.inputs.digest import content_digest, file_digest
from composer.output.x264 import ASM_CAP
from composer.version import __version__

SEGMENT_FRAMES = 100  # frames per video segment: what an interrupt can lose, at most, and the encoders' unit
# x264's threads per segment. Frame threads change x264's decisions, and its own choice counts the cores, so the
# count is fixed: with it, a segment's bytes depend on its frames and [output] alone, whichever renderer, lanes,
# machine or cluster worker encodes it. Segments encoded side by side fill the cores instead.
X264_THREADS = 1
MANIFEST = ".composer-run.json"
_PART = "part-{:06d}.mp4"
_IMAGE = re.compile(r"^(\d{6,})\.(png|jpg)$")
_MODELS = frozenset({"model.path", "features.encoder"})  # ONNX files, whose external data counts too
_OUTPUT_PATHS = frozenset({"output.frames", "output.video"})  # where the output goes does not change its bytes
# [model] keys that change where and how fast the model runs, never its output: TensorRT's cache folder (which
# the first run creates and fills), the GPU's number, its memory limit and IO binding (bit-identical to
# session.run).
_SPEED_ONLY = frozenset({"model.cache", "model.device_id", "model.gpu_memory_limit", "model.io_binding"})

Fingerprint = dict[str, Any]  # part name -> a value or a content digest, as JSON reads it back


def parts_folder(video: Path) -> Path:
    """The hidden folder holding a video's finished segments until they are joined."""
    return video.parent / f".{video.name}.parts"


def part_path(folder: Path, index: int) -> Path:
    """Segment ``index`` of a parts folder."""
    return folder / _PART.format(index)


def fingerprint(job: Job, count: int, rows: Path | None = None) -> Fingerprint:
    """Everything that decides the output's bytes, by name: each input's content (template, rectangles,
    features or the audio and encoder they are made from, model and encoder with their external data, audio),
    every key of ``[template]``, ``[features]``, ``[model]``, ``[composite]`` and ``[output]`` but the output paths
    and the model's speed-only keys, ``[run] loop``, the frame count, the segment length, x264's threads per
    segment and widest instruction set, and composer's version.

    ``rows``: the file of features made from audio (1.1), whose content counts too, so that a resumed run uses
    the very rows the interrupted one did (an encoder run by another ONNX Runtime may round them differently).

    The job file counts through these settings rather than its bytes: a comment, or a ``[run]`` key (they only
    change the speed: renderer, lanes, batch, encoders, memory) leaves the output and so the fingerprint as they
    were.
    """
    parts: dict[str, Any] = {"composer": __version__, "frames": count, "segment": SEGMENT_FRAMES,
                             "x264_threads": X264_THREADS, "x264_asm": ASM_CAP, "run.loop": job.run.loop}
    for section in ("template", "features", "model", "composite", "output"):
        spec = getattr(job, section)
        if spec is None:
            parts[section] = None
            continue
        for field in fields(spec):
            key, value = f"{section}.{field.name}", getattr(spec, field.name)
            if key in _OUTPUT_PATHS or key in _SPEED_ONLY:
                continue
            parts[key] = content_digest(value, model=key in _MODELS) if isinstance(value, Path) else value
    if rows is not None:
        parts["features.rows"] = file_digest(rows)
    normal: Fingerprint = json.loads(json.dumps(parts, default=str))  # as a manifest reads it back
    return normal


def digest(print_: Fingerprint) -> str:
    """One SHA-256 of a fingerprint."""
    return hashlib.sha256(json.dumps(print_, sort_keys=True).encode()).hexdigest()


def _read_manifest(path: Path) -> Fingerprint | None:
    """A manifest's fingerprint; None without one; empty for one that holds none (an older composer's)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    parts = found.get("parts") if isinstance(found, dict) else None
    return parts if isinstance(parts, dict) else {}


def _write_manifest(path: Path, print_: Fingerprint) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.parent / f".{path.name}.tmp"
        temp.write_text(json.dumps({"tool": "composer", "fingerprint": digest(print_), "parts": print_}))
        os.replace(temp, path)  # a manifest is whole or absent
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot write the run manifest: {exc.strerror or exc}") from exc


def _manifests(job: Job) -> list[tuple[Path, Path]]:
    """Each output's manifest, with the output it speaks for."""
    found = []
    if job.output.frames is not None:
        found.append((job.output.frames / MANIFEST, job.output.frames))
    if job.output.video is not None:
        found.append((parts_folder(job.output.video) / "manifest.json", job.output.video))
    return found


def _check(manifest: Path, print_: Fingerprint, where: Path) -> None:
    found = _read_manifest(manifest)
    if found is None:
        raise JobError(f"{where}: nothing to resume (no interrupted run of this job); run without --resume")
    changed = sorted(k for k in found.keys() | print_.keys() if found.get(k) != print_.get(k))
    if changed:
        named = ", ".join(changed[:6]) + (", ..." if len(changed) > 6 else "")
        raise JobError(f"{where}: the interrupted run there was of a different job or different inputs "
                       f"({named} changed); run without --resume to start over")


def resumable(job: Job, print_: Fingerprint) -> bool:
    """Whether every output holds a manifest of this fingerprint: a state ``--resume`` continues."""
    return all(_read_manifest(manifest) == print_ for manifest, _ in _manifests(job))


def resume_point(job: Job, count: int, print_: Fingerprint) -> int:
    """The first output frame an interrupted run of ``job`` still has to render.

    Raises:
        JobError: there is no interrupted run of this job to resume, or it was of other inputs or settings.
    """
    for manifest, where in _manifests(job):
        _check(manifest, print_, where)
    points = []
    if job.output.frames is not None:
        suffix = job.output.format
        points.append(next((i for i in range(count) if not (job.output.frames / f"{i:06d}.{suffix}").exists()),
                           count))
    if job.output.video is not None:
        folder = parts_folder(job.output.video)
        segments = 0
        while part_path(folder, segments).exists():
            segments += 1
        points.append(min(count, segments * SEGMENT_FRAMES))
    start = min(points)
    if job.output.video is not None:
        start -= start % SEGMENT_FRAMES  # a video resumes at a segment boundary
    return start


def segment_done(job: Job, first: int, stop: int) -> bool:
    """Whether output frames ``first .. stop-1`` (one video segment) are complete on disk: the segment's video
    part, where the job writes a video, and every image, where it writes images. A resumed run skips them."""
    output = job.output
    if output.video is not None and not part_path(parts_folder(output.video), first // SEGMENT_FRAMES).exists():
        return False
    if output.frames is None:
        return output.video is not None
    return all((output.frames / f"{i:06d}.{output.format}").exists() for i in range(first, stop))


def _numbered_images(folder: Path) -> list[tuple[Path, int, str]]:
    """The numbered images in ``folder`` (composer's names): each path, number and suffix; none if unreadable."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return [(Path(entry.path), int(match.group(1)), match.group(2))
            for entry in entries if (match := _IMAGE.match(entry.name))]


def _clear_images(folder: Path, suffix: str, count: int) -> None:
    """Remove the numbered images ``0 .. count-1`` an earlier run left in ``folder`` (this run writes them)."""
    for path, number, kind in _numbered_images(folder):
        if kind == suffix and number < count:
            path.unlink(missing_ok=True)


def stale_images(folder: Path, suffix: str, count: int) -> list[Path]:
    """The numbered images in ``folder`` that a run writing ``count`` images of ``suffix`` would leave as they are:
    those numbered ``count`` or more, and those of the other format."""
    return sorted(path for path, number, kind in _numbered_images(folder) if kind != suffix or number >= count)


def check_stale_images(job: Job, count: int, overwrite: bool = False) -> None:
    """Refuse a fresh run into a frames folder holding numbered images it would not overwrite (an earlier,
    longer run's), which would otherwise stay there looking like part of this one. ``overwrite`` removes them:
    only composer's numbered images, nothing else in the folder.

    Raises:
        JobError: such images are there and ``overwrite`` is not set; the message names the folder and the count.
    """
    if job.output.frames is None:
        return
    stale = stale_images(job.output.frames, job.output.format, count)
    if not stale:
        return
    if not overwrite:
        raise JobError(f"{job.output.frames}: holds {len(stale)} numbered images this job of {count} frames does not "
                       f"write (such as {stale[0].name}, from an earlier run); run with --overwrite to remove them, "
                       "or --resume to continue that run")
    for path in stale:
        path.unlink(missing_ok=True)


def mark_started(job: Job, count: int, print_: Fingerprint, fresh: bool) -> None:
    """Record the run beside its outputs. A ``fresh`` run first drops the old manifests, the images it will
    write and the old video segments, so that nothing an earlier run left counts as this run's work."""
    if not fresh:
        return  # resume_point found this fingerprint's manifests already there
    for manifest, _ in _manifests(job):
        manifest.unlink(missing_ok=True)
    if job.output.frames is not None:
        _clear_images(job.output.frames, job.output.format, count)
    if job.output.video is not None:
        shutil.rmtree(parts_folder(job.output.video), ignore_errors=True)
    for manifest, _ in _manifests(job):
        _write_manifest(manifest, print_)


def mark_finished(job: Job) -> None:
    """Remove the manifests of a finished run, and the video's parts folder if its sink left it."""
    if job.output.frames is not None:
        (job.output.frames / MANIFEST).unlink(missing_ok=True)
    if job.output.video is not None:
        shutil.rmtree(parts_folder(job.output.video), ignore_errors=True)
