"""Features made from audio by an encoder: one ``[g, D]`` row per output frame, cached beside the output.

``g = rows_per_second / fps`` encoder rows make one output frame's row, so the features of ``F`` encoder rows are
``[F // g, g, D]`` (the rows of an incomplete last frame dropped). The rows are written to disk as the encoder
returns them, and the ``.npy`` file assembled from there in blocks: memory does not grow with the audio.

A render keeps the features in a hidden file beside its output (its video, else in its frames folder), named by the
output and a digest of the audio's and the encoder's content and of every setting that changes the rows, so a second
render of the same audio reads them back instead of running the encoder again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from composer.config import defaults
from composer.config.features import FeaturesSpec
from composer.config.job import Job
from composer.errors import JobError, OutputError
from composer.inputs.audio import decode_mono
from composer.inputs.digest import content_digest
from composer.inputs.encoder import AudioEncoder, encode_rows

__all__ = ["CACHE_PREFIX", "cached_features", "encoded_job", "features_cache", "rows_per_frame",
           "with_features_file", "write_features"]

CACHE_PREFIX = ".composer-features-"  # in a frames folder; beside a video: .NAME.features-
_FORMAT = 1  # bump when the rows written for the same inputs change
_COPY_BYTES = 1 << 22
log = logging.getLogger("composer")


def rows_per_frame(rows_per_second: int, fps: Fraction) -> int:
    """``g = rows_per_second / fps``, the encoder rows of one output frame.

    Raises:
        JobError: ``g`` is not a whole number of at least 1, naming both rates.
    """
    g = Fraction(rows_per_second) / fps
    if g.denominator != 1 or g < 1:
        raise JobError(f"job key features.rows_per_second: {rows_per_second} encoder rows a second at {fps} fps is "
                       f"{float(g):.4g} rows a frame; it must be a whole number (set features.rows_per_second or "
                       "output.fps so that rows_per_second / fps is an integer)")
    return int(g)


def write_features(spec: FeaturesSpec, fps: Fraction, target: Path) -> tuple[int, ...]:
    """Encode ``spec.audio`` with ``spec.encoder`` into ``target``, a ``.npy`` array ``[N, g, D]`` of float32,
    complete or absent. Returns its shape.

    Raises:
        JobError: the audio is missing, unreadable or shorter than one output frame; ``g`` is not whole.
        ModelError: the encoder is missing, does not take mono PCM or fails.
        OutputError: ``target`` cannot be written.
    """
    assert spec.audio is not None and spec.encoder is not None
    g = rows_per_frame(spec.rows_per_second, fps)
    encoder = AudioEncoder(spec.encoder, defaults.usable_cores())
    target = Path(target)
    rows_file = target.parent / f".{target.name}.rows.tmp"
    partial = target.parent / f".{target.name}.partial.npy"
    try:
        with _writing(target), open(rows_file, "wb") as rows_out:
            count, width = 0, 0
            for rows in encode_rows(decode_mono(spec.audio, spec.sample_rate), spec, encoder):
                if width and rows.shape[1] != width:
                    raise JobError(f"{spec.encoder}: returned rows of {rows.shape[1]} values after rows of {width}")
                width = rows.shape[1]
                rows_out.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())
                count += len(rows)
            frames = count // g
            if frames == 0:
                raise JobError(f"{spec.audio}: the encoder returned {count} rows, fewer than the {g} rows of one "
                               f"frame at {fps} fps")
            rows_out.flush()
            with open(rows_file, "rb") as rows_in, open(partial, "wb") as out:
                np.lib.format.write_array_header_1_0(
                    out, {"descr": "<f4", "fortran_order": False, "shape": (frames, g, width)})
                left = frames * g * width * 4
                while left:
                    block = rows_in.read(min(left, _COPY_BYTES))
                    out.write(block)
                    left -= len(block)
            os.replace(partial, target)  # complete, or absent
    finally:
        rows_file.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    return (frames, g, width)


@contextlib.contextmanager
def _writing(target: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise OutputError(f"{target}: cannot write the features: {exc.strerror or exc}") from exc


def features_cache(job: Job) -> Path:
    """Where a render keeps its audio features: a prefix beside its video (``.NAME.mp4.features-``), else in its
    frames folder (``.composer-features-``); the digest of :func:`cache_key` and ``.npy`` complete the name."""
    if job.output.video is not None:
        prefix = job.output.video.parent / f".{job.output.video.name}.features-"
    else:
        assert job.output.frames is not None
        prefix = job.output.frames / CACHE_PREFIX
    # The cache may be written before the outputs are checked against the inputs (by inspect, profile,
    # precision): never into the template's folder.
    template = job.template.source
    if template.is_dir() and prefix.parent.resolve().is_relative_to(template.resolve()):
        raise JobError(f"{prefix.parent}: the output lies in the template's folder {template}; choose another "
                       "output folder")
    return prefix


def cache_key(spec: FeaturesSpec, fps: Fraction) -> str:
    """A digest of everything that decides the features: the audio's and the encoder's content and settings."""
    assert spec.audio is not None and spec.encoder is not None
    parts = {"format": _FORMAT, "audio": content_digest(spec.audio), "fps": str(fps),
             "encoder": content_digest(spec.encoder, model=True), "sample_rate": spec.sample_rate,
             "rows_per_second": spec.rows_per_second, "chunk_seconds": spec.chunk_seconds,
             "overlap_seconds": spec.overlap_seconds}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cached_features(spec: FeaturesSpec, fps: Fraction, prefix: Path) -> Path:
    """The features of ``spec.audio`` at ``fps``: the file ``prefix`` + digest + ``.npy`` (:func:`features_cache`),
    read when it is there, else encoded into it.

    Features cached under the same prefix for other audio, encoders or settings are removed once the new ones are
    written; another output's, in the same folder, are left alone.

    Raises:
        As :func:`write_features`.
    """
    assert spec.audio is not None and spec.encoder is not None
    if not spec.audio.is_file():
        raise JobError(f"{spec.audio}: no such audio file (features.audio)")
    if not spec.encoder.is_file():
        raise JobError(f"{spec.encoder}: no such encoder file (features.encoder)")
    rows_per_frame(spec.rows_per_second, fps)
    folder = prefix.parent
    path = folder / f"{prefix.name}{cache_key(spec, fps)[:32]}.npy"
    if path.is_file():
        log.info("features: %s, encoded earlier, from %s", spec.audio.name, path)
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output folder: {exc.strerror or exc}") from exc
    log.info("features: encoding %s with %s", spec.audio.name, spec.encoder.name)
    shape = write_features(spec, fps, path)
    log.info("features: %d frames of %d x %d encoder rows, kept in %s", *shape, path)
    for old in folder.iterdir():
        if old.name.startswith(prefix.name) and old.suffix == ".npy" and old != path:
            old.unlink(missing_ok=True)
    return path


def encoded_job(job: Job, fps: Fraction) -> Job:
    """``job`` with its features in a ``.npy`` file: those made from ``features.audio`` (encoded, or read from the
    cache beside the output) stand in for the audio and its encoder. A job without audio features is returned as
    it is."""
    spec = job.features
    if spec is None or spec.audio is None:
        return job
    return with_features_file(job, cached_features(spec, fps, features_cache(job)))


def with_features_file(job: Job, path: Path) -> Job:
    """``job`` reading its features from ``path``, the file its audio was encoded into, instead of the audio."""
    assert job.features is not None
    return dataclasses.replace(job, features=dataclasses.replace(job.features, path=path, audio=None, encoder=None))
