"""Factories for tiny synthetic jobs: a few frames of 64 x 48, a model built in code, all in tmp_path."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from composer.model.zoo import build_elementwise
from composer.tools.demo import make_demo_assets

__all__ = ["job_factory", "read_folder", "write_frames", "boxes_for", "write_job", "write_wav", "digest", "full_copy"]

WIDTH, HEIGHT = 64, 48
CROP, BORDER = 24, 2


def write_frames(folder: Path, count: int, size: tuple[int, int] = (WIDTH, HEIGHT), seed: int = 0) -> Path:
    """A folder of ``count`` random-ish PNG frames named frame_0.png, frame_1.png, ..."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for t in range(count):
        frame = np.roll(base, 3 * t, axis=1)
        frame[: 4, : 4] = t  # every frame differs, so a wrong schedule shows
        cv2.imwrite(str(folder / f"frame_{t}.png"), frame)
    return folder


def boxes_for(count: int, nulls: Sequence[int] = (), size: tuple[int, int] = (WIDTH, HEIGHT)) -> list[Any]:
    """One rectangle per frame, moving a little, of varied sizes; ``None`` at ``nulls``."""
    width, height = size
    boxes: list[Any] = []
    for t in range(count):
        x1, y1 = 3 + t % 5, 2 + t % 4
        boxes.append(None if t in nulls else [x1, y1, min(width, x1 + 20 + t % 7), min(height, y1 + 17 + t % 3)])
    return boxes


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def write_job(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in keys.items() if value is not None]
    path.write_text("\n".join(lines) + "\n")
    return path


def job_factory(tmp_path: Path) -> Callable[..., Path]:
    """A function that builds a small job under ``tmp_path`` and returns its job file."""

    def factory(
        frames: int = 7,
        outputs: int | None = 23,
        nulls: Sequence[int] = (3,),
        window: int = 4,
        model_batch: int | None = None,
        inputs: Sequence[str] = ("crop", "masked"),
        color: str = "bgr",
        loop: str = "pingpong",
        blend: str = "hard",
        feather: int = 0,
        name: str = "job",
        run: dict[str, Any] | None = None,
        output: dict[str, Any] | None = None,
    ) -> Path:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        write_frames(root / "template", frames)
        (root / "rects.json").write_text(json.dumps(boxes_for(frames, nulls)))
        sections: dict[str, dict[str, Any]] = {
            "template": {"frames": "template", "rects": "rects.json"},
        }
        feature_shape = None
        if outputs is not None:
            rng = np.random.default_rng(7)
            np.save(root / "features.npy", rng.normal(size=(outputs, 5)).astype(np.float32))
            sections["features"] = {"path": "features.npy", "window": window}
            feature_shape = (window * 5,)
        build_elementwise(root / "model.onnx", window=CROP - 2 * BORDER, in_channels=3 * len(inputs),
                          feature_shape=feature_shape, batch=model_batch, seed=3)
        sections["model"] = {
            "path": "model.onnx", "crop": CROP, "border": BORDER, "inputs": list(inputs),
            "mask": [2, 10, 16, 8], "color": color,
        }
        sections["composite"] = {"blend": blend, "feather": feather}
        sections["output"] = {"frames": "out", "format": "png", **(output or {})}
        sections["run"] = {"loop": loop, **(run or {})}
        return write_job(root / "job.toml", sections)

    return factory


@pytest.fixture(autouse=True)
def _models_are_not_cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' frames are tiny, so the cost below which a model counts as cheap is microseconds and a
    timed model would land on either side of it by chance. Every render therefore takes the default layout of
    an expensive model (two lanes on the CI's 2 cores); tests of the timing itself replace this."""
    monkeypatch.setattr("composer.rendering.layout.frame_seconds", lambda model, batch: math.inf)


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[..., Path]:
    """Build a small job in tmp_path and return its job file; keyword arguments shape it."""
    return job_factory(tmp_path)


def read_folder(folder: Path) -> list[np.ndarray]:
    """The images of an output folder, in name order."""
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))]


def write_wav(path: Path, seconds: float = 2.0, rate: int = 44100, channels: int = 2) -> Path:
    """A 440 Hz tone as 16-bit PCM wav."""
    samples = int(seconds * rate)
    tone = (np.sin(np.arange(samples) * 2 * np.pi * 440 / rate) * 8000).astype(np.int16)
    with wave.open(str(path), "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(np.repeat(tone[:, None], channels, axis=1).tobytes())
    return path


@pytest.fixture(scope="session")
def demo_video_job(tmp_path_factory) -> Path:
    """The demo job at 64x64 (a 5-frame H.264 template, ping-pong over 11 frames), with a cheap model."""
    root = tmp_path_factory.mktemp("demo-video-job")
    job_file = make_demo_assets(root, frames=11, size=(64, 64), template_frames=5)
    build_elementwise(root / "model.onnx", window=320, in_channels=6, feature_shape=(32, 16, 16))
    return job_file


def broken_copy(job_file: Path, folder: Path, name: str, content: bytes = b"garbage") -> Path:
    """A copy of the job's folder (files only) with file ``name`` overwritten by ``content``; its job file."""
    folder.mkdir()
    for path in job_file.parent.iterdir():
        if path.is_file():
            (folder / path.name).write_bytes(path.read_bytes())
    (folder / name).write_bytes(content)
    return folder / job_file.name


def digest(path: Path) -> str:
    """What a path holds: a file's bytes, a folder's names and bytes, a special file's kind and device."""
    info = os.lstat(path)
    if stat.S_ISDIR(info.st_mode):
        parts = [f"{p.relative_to(path)}:{digest(p)}" for p in sorted(path.rglob("*"))]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()
    if stat.S_ISREG(info.st_mode):
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{stat.S_IFMT(info.st_mode)}:{info.st_rdev}"


def full_copy(path: Path) -> Path:
    """A copy of /dev/full (character device 1, 7) at ``path``; skips the test where mknod is not permitted."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    except OSError as exc:
        pytest.skip(f"mknod is not permitted here: {exc}")
    return path
