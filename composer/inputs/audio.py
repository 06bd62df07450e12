"""Audio decoded for an encoder: any file PyAV reads, as mono float32 PCM in [-1, 1] at one sample rate.

Decoding streams: the samples come out in blocks as the file is read, so a long file never sits whole in memory.
Audio that is already mono at the rate keeps its samples exactly (integers scaled by a power of two, floats as
they are). Anything else goes through libswresample (FFmpeg's resampler, which PyAV wraps as
``av.AudioResampler``) to float at the rate, channel by channel, and the channels are then averaged: a
downmix whose gain is one, where FFmpeg's own stereo-to-mono matrix gives each channel 0.707 and can exceed 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from composer.errors import JobError

__all__ = ["audio_seconds", "decode_mono"]

# Integer sample formats and the power of two that scales them into [-1, 1): exact in float32 for 8 and 16 bits.
_SCALES = {"u8": 2.0**7, "s16": 2.0**15, "s32": 2.0**31, "s64": 2.0**63}


def decode_mono(path: Path, rate: int) -> Iterator[np.ndarray]:
    """The first audio stream of ``path`` as blocks of mono float32 samples at ``rate`` Hz.

    Raises:
        JobError: the file is missing, holds no audio stream, or cannot be decoded; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise JobError(f"{path}: no such audio file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise JobError(f"{path}: cannot read the audio: {exc}") from None
    with container:
        if not container.streams.audio:
            raise JobError(f"{path}: holds no audio stream")
        stream = container.streams.audio[0]
        try:
            yield from _blocks(container.decode(stream), rate)
        except (av.error.FFmpegError, ValueError) as exc:
            raise JobError(f"{path}: cannot decode the audio: {exc}") from None


def _blocks(frames: Iterator[av.AudioFrame], rate: int) -> Iterator[np.ndarray]:
    """Each decoded frame's samples as mono float32 at ``rate``: kept exactly when the audio already is mono at
    the rate (decided by the first frame), else resampled and averaged over the channels."""
    resampler: av.AudioResampler | None = None
    exact: bool | None = None
    for frame in frames:
        if exact is None:
            exact = len(frame.layout.channels) == 1 and frame.sample_rate == rate
            if not exact:
                resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=rate)
        if exact:
            yield _exact(frame)
            continue
        assert resampler is not None
        for out in resampler.resample(frame):
            yield _mean_channels(out)
    if resampler is not None:
        for out in resampler.resample(None):  # what the resampler still holds
            yield _mean_channels(out)


def _exact(frame: av.AudioFrame) -> np.ndarray:
    """A mono frame's samples as float32, integers scaled by a power of two (exact for 8 and 16 bits)."""
    name = frame.format.name.rstrip("p")
    samples = frame.to_ndarray().reshape(-1)
    if name in ("flt", "dbl"):
        return samples.astype(np.float32, copy=False)
    if name == "u8":
        return ((samples.astype(np.float32) - 128.0) / _SCALES["u8"]).astype(np.float32)
    if name in _SCALES:
        return (samples.astype(np.float64) / _SCALES[name]).astype(np.float32)
    raise ValueError(f"sample format {frame.format.name} is not PCM")


def _mean_channels(frame: av.AudioFrame) -> np.ndarray:
    """A planar float frame's channels averaged into one."""
    planes = frame.to_ndarray()
    if planes.shape[0] == 1:
        return planes[0].astype(np.float32, copy=False)
    return planes.mean(axis=0, dtype=np.float64).astype(np.float32)


def audio_seconds(path: Path) -> float | None:
    """How long the first audio stream of ``path`` lasts, from its header; None where the file does not say."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration is not None else None
    except (av.error.FFmpegError, OSError, ValueError):
        return None
