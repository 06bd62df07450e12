"""x264's instruction set is pinned: the same frames make the same bytes, whatever the CPU adds beyond AVX2."""

from __future__ import annotations

import hashlib
import io
import platform
from fractions import Fraction

import av
import numpy as np
import pytest

from composer.output import x264
from composer.output.writers import add_h264_stream

AVX512 = {name: True for name in ("SSSE3", "SSE42", "AVX", "FMA3", "LZCNT", "BMI", "BMI2", "AVX2", "AVX512F")}


@pytest.mark.parametrize(("machine", "features", "level"), [
    ("x86_64", AVX512, "AVX2"),  # AVX-512 is never used
    ("AMD64", {**AVX512, "AVX512F": False}, "AVX2"),  # Windows' name
    ("x86_64", {**AVX512, "BMI2": False}, "AVX"),  # x264's AVX2 level needs BMI2 too
    ("x86_64", {**AVX512, "AVX": False, "AVX2": False}, "SSE4.2"),
    ("x86_64", {"SSSE3": True}, "SSSE3"),
    ("x86_64", {"SSE2": True, "SSE3": True}, None),  # below SSSE3: x264 chooses
    ("x86_64", None, None),  # the features cannot be read
    ("aarch64", {"NEON": True, "ASIMD": True}, None),
])
def test_the_level_is_the_widest_the_cpu_has_up_to_avx2(machine, features, level):
    assert x264.asm_level(machine, features) == level


def test_the_options_join_the_pin_to_other_parameters(monkeypatch):
    monkeypatch.setattr(x264, "_this_level", lambda: "AVX2")
    assert x264.x264_options() == {"x264-params": "asm=AVX2"}
    assert x264.x264_options("scenecut=0") == {"x264-params": "scenecut=0:asm=AVX2"}
    monkeypatch.setattr(x264, "_this_level", lambda: None)
    assert x264.x264_options() == {} and x264.x264_options("scenecut=0") == {"x264-params": "scenecut=0"}


def _frames(count: int = 23, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """I420 frames of a little noise that brightens: enough for x264's analysis to make choices."""
    base = np.random.default_rng(1).integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)
    return [np.clip(base.astype(int) + 3 * i, 0, 255).astype(np.uint8) for i in range(count)]


def _encode(frames: list[np.ndarray], **options: str) -> str:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        height, width = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
        stream = add_h264_stream(container, Fraction(25), width, height, 18, "veryfast", 1, **options)
        for i, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="yuv420p")
            video_frame.pts = i
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
    return hashlib.sha256(buffer.getvalue()).hexdigest()


@pytest.mark.timeout(120)
def test_the_same_frames_make_the_same_bytes_every_time():
    """Unpinned, x264's AVX-512 code gave other bytes for a few of 200 encodes in most processes."""
    frames = _frames()
    results = {_encode(frames) for _ in range(200)}
    assert len(results) == 1


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or x264.x264_options() == {},
                    reason="x264's instruction set is pinned on x86-64 only")
def test_the_bytes_do_not_depend_on_the_level_from_ssse3_up():
    """What makes a segment encoded on an older worker the same file as one encoded on a newer one."""
    frames = _frames(30, 320, 240)
    assert _encode(frames) == _encode(frames, **{"x264-params": "asm=SSSE3"})
