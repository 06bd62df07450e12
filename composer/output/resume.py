"""Interrupted runs, and where to resume them: exactly, or not at all.

A run leaves a small manifest beside each output (``.composer-run.json`` in the frames folder, ``manifest.json``
in the video's parts folder) holding the job's :func:`fingerprint`: the content of every input, every setting that
changes a byte of the output, the frame count and composer's version. ``--resume`` continues only a run whose
fingerprint is this job's, from the first output frame that is not safely on disk: the first missing image, or
the start of the first missing video segment. Otherwise it refuses, naming what changed.

A fresh run first removes what an earlier run left where it writes (the numbered images it will write, the
video's parts), then records its manifests: every image and segment found beside a manifest was written by a
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
from composer.inputs.sources import IMAGE_SUFFIXES
from composer.version import __version__

SEGMENT_FRAMES = 100  # frames per video segment: what an interrupt can lose, at most, and the encoders' unit
# x264's threads per segment. Frame threads change x264's decisions, and its own choice counts the cores, so the
# count is fixed: with it, a segment's bytes depend on its frames and [output] alone, whichever renderer, lanes,
# machine or cluster worker encodes it. Segments encoded side by side fill the cores instead.
X264_THREADS = 1
MANIFEST = ".composer-run.json"
_PART = "part-{:06d}.mp4"
_IMAGE = re.compile(r"^(\d{6,})\.(png|jpg)$")
_OUTPUT_PATHS = frozenset({"output.frames", "output.video"})  # where the output goes does not change its bytes
_CHUNK = 1 << 20

Fingerprint = dict[str, Any]  # part name -> a value or a content digest, as JSON reads it back


def parts_folder(video: Path) -> Path:
    """The hidden folder holding a video's finished segments until they are joined."""
    return video.parent / f".{video.name}.parts"


def part_path(folder: Path, index: int) -> Path:
    """Segment ``index`` of a parts folder."""
    return folder / _PART.format(index)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks.

    Every byte is read, because it is cheap next to a render: 0.11 s per 100 MB on the development machine
    (page cache warm; BLAKE2b took 0.13 s, this CPU having SHA instructions). The demo job's inputs (3.3 MB:
    template, model, features, audio) hash in 3-8 ms, against 12 s to render its 250 frames at 20 fps; a render
    decodes its template and loads its model whole anyway. Sampling the content would save a fraction of a
    percent and let an edit between the samples through.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _external_data(model: Path) -> list[Path]:
    """The files holding a model's external tensors (checked to lie in its folder when the model is opened)."""
    import onnx

    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception:  # noqa: BLE001 - not ONNX: opening the model reports it
        return []
    tensors = list(proto.graph.initializer)
    for node in proto.graph.node:
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    names = {e.value for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL
             for e in t.external_data if e.key == "location"}
    return [model.parent / name for name in sorted(names)]


def content_digest(path: Path, model: bool = False) -> str:
    """The content of an input: a file's bytes, a template folder's images (names and bytes), and for a
    ``model`` its external data files too; ``"missing"`` for a path that is neither file nor folder."""
    if path.is_dir():
        digest = hashlib.sha256()
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if not entry.name.startswith(".") and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES \
                    and entry.is_file():
                digest.update(f"{entry.name}\0{file_digest(Path(entry.path))}\0".encode())
        return digest.hexdigest()
    if not path.is_file():
        return "missing"
    files = [path, *(_external_data(path) if model else [])]
    return "+".join(file_digest(f) if f.is_file() else "missing" for f in files)


def fingerprint(job: Job, count: int) -> Fingerprint:
    """Everything that decides the output's bytes, by name: each input's content (template, rectangles,
    features, model with its external data, audio), every key of ``[template]``, ``[features]``, ``[model]``,
    ``[composite]`` and ``[output]`` but the output paths, ``[run] loop``, the frame count, the segment length,
    x264's threads per segment and composer's version.

    The job file counts through these settings rather than its bytes: a comment, or a ``[run]`` key (they only
    change the speed: renderer, lanes, batch, encoders, memory) leaves the output and so the fingerprint as they
    were.
    """
    parts: dict[str, Any] = {"composer": __version__, "frames": count, "segment": SEGMENT_FRAMES,
                             "x264_threads": X264_THREADS, "run.loop": job.run.loop}
    for section in ("template", "features", "model", "composite", "output"):
        spec = getattr(job, section)
        if spec is None:
            parts[section] = None
            continue
        for field in fields(spec):
            key, value = f"{section}.{field.name}", getattr(spec, field.name)
            if key in _OUTPUT_PATHS:
                continue
            parts[key] = content_digest(value, model=key == "model.path") if isinstance(value, Path) else value
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


def _clear_images(folder: Path, suffix: str, count: int) -> None:
    """Remove the numbered images ``0 .. count-1`` an earlier run left in ``folder`` (this run writes them)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = _IMAGE.match(entry.name)
        if match and match.group(2) == suffix and int(match.group(1)) < count:
            Path(entry.path).unlink(missing_ok=True)


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
