"""The synthetic inputs of ``composer demo``: a template video of a face, its mouth rectangles, a voice-like wav,
an audio encoder that turns it into features, a random U-Net and the job file that ties them together.

Everything is drawn or generated from a seed, so the demo needs no download and no real person.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import wave
from pathlib import Path

import av
import cv2
import numpy as np

from composer.errors import JobError, OutputError
from composer.model.zoo import build_audio_encoder, build_unet
from composer.output.x264 import x264_options
from composer.tools.examples import example_text

__all__ = ["check_demo_folder", "make_demo_assets"]

_FPS = 25
_SAMPLE_RATE = 16_000
_WINDOW = 320
_FEATURE_SHAPE = (32, 16, 16)  # 8 frames of 2 encoder rows of 512 values, as the job's window of 8 gives the model.
_SYLLABLES_PER_S = 4.0
# What the demo writes into its folder: a folder holding anything else is not composer's demo.
_DEMO_NAMES = frozenset({"job.toml", "template.mp4", "rects.json", "speech.wav", "encoder.onnx", "model.onnx", "out",
                         "features.npy"})  # features.npy: an earlier demo's

# The job file, with relative paths so that the demo folder can be moved as a whole; `composer init --example
# demo` writes it too.
_JOB_TOML = example_text("demo")
# The job files earlier versions of the demo wrote (SHA-256), so that their folders are still known as the demo's.
_EARLIER_JOBS = frozenset({"dd26bcd759d6b3fdbe4e30b9e831767493ac1787034c259e13540652a3badfc3"})

def make_demo_assets(
    folder: Path,
    *,
    frames: int = 250,
    size: tuple[int, int] = (1280, 720),
    template_frames: int | None = None,
    seed: int = 0,
    grain: float = 0.0,
) -> Path:
    """Writes the inputs of a demo job into ``folder`` and returns the path of its ``job.toml``.

    Writes ``template.mp4`` (a drawn face whose mouth opens and closes), ``rects.json``, ``speech.wav``
    (frames / 25 s), ``encoder.onnx`` (:func:`composer.model.zoo.build_audio_encoder`, which turns the speech into
    the features: two rows of 512 values a frame), ``model.onnx`` (:func:`composer.model.zoo.build_unet`) and
    ``job.toml``.

    Args:
        folder: Where to write; created if missing.
        frames: Output frames of the job (the length of the speech, which the features follow).
        size: Width and height of the template; even, at least 64 x 64.
        template_frames: Frames of the template; ``min(frames, 100)`` when None.
        seed: Seed of the speech and of the encoder's and the model's weights.
        grain: Standard deviation, in levels, of a per-frame noise like a camera sensor's. The drawn frames
            alone compress to a few kbit/s and decode far faster than filmed footage; the benchmarks add grain
            so that decoding (and a seek) costs what it does on a real template.

    Returns:
        The path of ``job.toml``.

    Raises:
        JobError: ``frames``, ``size`` or ``template_frames`` is invalid, or ``folder`` holds something that is
            not an earlier demo of composer's (:func:`check_demo_folder`).
        OutputError: A file could not be written.
    """
    width, height = size
    if width % 2 or height % 2 or width < 64 or height < 64:
        raise JobError(f"demo size must be even and at least 64x64, got {width}x{height}")
    if frames < 1:
        raise JobError(f"demo frames must be at least 1, got {frames}")
    count = min(frames, 100) if template_frames is None else template_frames
    if count < 1:
        raise JobError(f"demo template_frames must be at least 1, got {count}")
    folder = Path(folder)
    check_demo_folder(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        job = folder / "job.toml"
        job.write_text(_JOB_TOML)  # first: a folder the demo was interrupted in is still known as the demo's
        rects = _write_template(folder / "template.mp4", count, width, height, grain, seed)
        (folder / "rects.json").write_text(json.dumps(rects) + "\n")
        _write_speech(folder / "speech.wav", frames, seed)
        build_audio_encoder(folder / "encoder.onnx", seed=seed)
        build_unet(folder / "model.onnx", window=_WINDOW, feature_shape=_FEATURE_SHAPE, seed=seed)
    except (OSError, av.error.FFmpegError) as exc:
        raise OutputError(f"cannot write the demo assets into {folder}: {exc}") from exc
    return job


def check_demo_folder(folder: Path) -> None:
    """Refuse a demo folder that is not new, empty or composer's own earlier demo, whose files it replaces.

    An earlier demo is a folder holding the demo's ``job.toml`` as composer writes it and nothing but the
    demo's files and its ``out`` folder: a user's job there (its own ``job.toml``, model or template) is never
    overwritten.

    Raises:
        JobError: ``folder`` is not a folder, or holds a file that is not the demo's.
    """
    if not folder.exists() and not folder.is_symlink():
        return
    if not folder.is_dir():
        raise JobError(f"demo folder {folder}: exists and is not a folder; give a new or empty folder")
    names = sorted(os.listdir(folder))
    job = folder / "job.toml"
    foreign = [name for name in names if name not in _DEMO_NAMES]
    if names and not _is_demo_job(job):
        foreign = ["job.toml"] if job.exists() else foreign or names  # a job of the user's comes first
    if foreign:
        raise JobError(f"demo folder {folder} holds {folder / foreign[0]}, which is not composer's demo and would "
                       "be overwritten; give a new or empty folder")


def _is_demo_job(job: Path) -> bool:
    """Whether ``job`` is the demo's job file exactly as :func:`make_demo_assets` writes it, or wrote it."""
    try:
        text = job.read_text(encoding="utf-8") if job.is_file() else None
    except (OSError, UnicodeDecodeError):
        return False
    return text is not None and (text == _JOB_TOML or hashlib.sha256(text.encode()).hexdigest() in _EARLIER_JOBS)


def _mouth_opening(t: float) -> float:
    """How open the mouth is at time ``t`` (0 closed, 1 open), following the speech's syllables."""
    return math.sin(math.pi * _SYLLABLES_PER_S * t) ** 2


def _background(width: int, height: int) -> np.ndarray:
    """A smooth diagonal BGR gradient, so that a pasted region with a visible seam would stand out."""
    u = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    v = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    channels = [60 + 120 * u + 40 * v, 90 + 60 * v + 0 * u, 150 - 80 * u + 60 * v]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def _face_centre(index: int, width: int, height: int) -> tuple[int, int]:
    # One slow left-right sweep per 8 s, within a sixth of the width, so the rectangles move.
    dx = 0.08 * width * math.sin(2 * math.pi * index / (8 * _FPS))
    return round(width / 2 + dx), round(0.48 * height)


def _draw_face(frame: np.ndarray, centre: tuple[int, int], opening: float) -> tuple[int, int]:
    """Draws a head with eyes and a mouth on ``frame`` in place; returns the centre of the mouth."""
    height = frame.shape[0]
    cx, cy = centre
    head = (round(0.17 * height), round(0.23 * height))
    cv2.ellipse(frame, centre, head, 0, 0, 360, (120, 160, 215), -1, cv2.LINE_AA)
    eye_dx, eye_y = round(0.07 * height), cy - round(0.06 * height)
    eye = (max(1, round(0.025 * height)), max(1, round(0.015 * height)))
    for x in (cx - eye_dx, cx + eye_dx):
        cv2.ellipse(frame, (x, eye_y), eye, 0, 0, 360, (250, 250, 250), -1, cv2.LINE_AA)
        cv2.circle(frame, (x, eye_y), max(1, eye[1] - 1), (60, 40, 30), -1, cv2.LINE_AA)
    mouth = (cx, cy + round(0.12 * height))
    lips = (max(2, round(0.06 * height)), max(1, round(0.005 * height + 0.035 * height * opening)))
    cv2.ellipse(frame, mouth, lips, 0, 0, 360, (70, 60, 170), -1, cv2.LINE_AA)
    cv2.ellipse(frame, mouth, (lips[0] - 1, max(1, lips[1] - 2)), 0, 0, 360, (40, 20, 60), -1, cv2.LINE_AA)
    return mouth


def _mouth_rect(mouth: tuple[int, int], width: int, height: int) -> list[int]:
    """A square of a quarter of the height around the mouth, shifted to lie inside the frame."""
    side = round(0.25 * height)
    x1 = min(max(mouth[0] - side // 2, 0), width - side)
    y1 = min(max(mouth[1] - side // 2, 0), height - side)
    return [x1, y1, x1 + side, y1 + side]


def _write_template(path: Path, count: int, width: int, height: int, grain: float = 0.0,
                    seed: int = 0) -> list[list[int]]:
    """Encodes the template video (H.264, yuv420p, 25 fps) and returns its mouth rectangles."""
    background = _background(width, height)
    rng = np.random.default_rng(seed)
    rects = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # x264's defaults (a keyframe every 250 frames), without the scene cuts the grain would set off: a
        # template filmed in one take has none, so a seek decodes from up to 250 frames back.
        stream.options = {"crf": "18", "preset": "veryfast", **x264_options("scenecut=0")}
        for index in range(count):
            frame = background.copy()
            centre = _face_centre(index, width, height)
            mouth = _draw_face(frame, centre, _mouth_opening(index / _FPS))
            rects.append(_mouth_rect(mouth, width, height))
            if grain > 0:
                noise = rng.standard_normal((height, width), dtype=np.float32) * grain
                frame = np.clip(frame + noise[:, :, None], 0, 255).astype(np.uint8)
            video_frame = av.VideoFrame.from_ndarray(frame, format="bgr24")
            container.mux(stream.encode(video_frame.reformat(format="yuv420p")))
        container.mux(stream.encode())
    return rects


def _write_speech(path: Path, frames: int, seed: int) -> None:
    """Writes a voice-like tone (mono, 16 kHz, 16-bit) of ``frames / 25`` seconds."""
    rng = np.random.default_rng(seed + 1)
    t = np.arange(frames * _SAMPLE_RATE // _FPS) / _SAMPLE_RATE
    # A gliding pitch with a few decaying harmonics reads as a voice; the envelope makes syllables.
    pitch = 140.0 * (1.0 + 0.08 * np.sin(2 * math.pi * 0.7 * t))
    cycles = 2 * math.pi * np.cumsum(pitch) / _SAMPLE_RATE
    voice = sum(np.sin(k * cycles + rng.uniform(0, 2 * math.pi)) / k for k in range(1, 6))
    envelope = np.sin(math.pi * _SYLLABLES_PER_S * t) ** 2
    samples = np.rint(0.3 * 32767 * voice * envelope / 2.3).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(_SAMPLE_RATE)
        wav.writeframes(samples.tobytes())
