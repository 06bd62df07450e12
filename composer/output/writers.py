"""Where finished frames go: a folder of numbered images and/or an H.264 mp4 with an optional audio track.

Both sinks are context managers that never leave a file which looks finished but is not: each file is
written under a hidden temporary name and renamed into place only when complete.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import cv2
import numpy as np

from composer.errors import JobError, OutputError
from composer.output.colour import bgr_to_i420_bt709
from composer.output.x264 import x264_options

__all__ = ["ImageFolderSink", "VideoSink", "add_h264_stream", "check_audio", "convert_frame", "converted_shape",
           "partial_path"]

log = logging.getLogger("composer")

_STALE_TEMP = re.compile(r"^\.\d{6,}\.(png|jpg)\.tmp$")
# The colours of bgr_to_i420_bt709, as codec options: x264 writes them into the stream's VUI and the mp4
# muxer into its colr box. Options rather than codec-context attributes, which older PyAV lacks.
_BT709_TAGS = {"color_primaries": "bt709", "color_trc": "bt709", "colorspace": "bt709", "color_range": "tv"}
_AAC_RATES = frozenset({96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000})


def partial_path(path: Path, suffix: str = ".mp4") -> Path:
    """The hidden name a file is written under, beside it, until it is complete: ``.NAME.partial.mp4``."""
    return path.parent / f".{path.name}.partial{suffix}"


class ImageFolderSink:
    """Writes frames as ``000000.png``, ``000001.png``, ... (or ``.jpg``) into one folder.

    ``write`` is thread-safe for distinct indices: every call encodes and renames its own file.
    """

    def __init__(self, folder: Path, fmt: str = "png", quality: int = 95, clean: bool = True) -> None:
        """Creates the folder.

        Args:
            folder: Where the images go; created with its parents.
            fmt: ``"png"`` or ``"jpg"``.
            quality: JPEG quality, 0-100 (ignored for png).
            clean: remove the temporary files a killed run left; False for one of several processes writing
                into the folder at once (a cluster's segments), whose temporary files are the others'.

        Raises:
            OutputError: The folder cannot be created or written.
        """
        if fmt not in ("png", "jpg"):
            raise ValueError(f"image format must be png or jpg, not {fmt!r}")
        self.folder = Path(folder)
        self.fmt = fmt
        # PNG level 1 is several times faster than OpenCV's default 3 for a few percent more bytes.
        self._params = (
            [cv2.IMWRITE_PNG_COMPRESSION, 1] if fmt == "png" else [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{self.folder}: cannot create the output folder: {exc.strerror or exc}"
            ) from exc
        if clean:
            self._remove_stale_temps()

    def _remove_stale_temps(self) -> None:
        for entry in os.scandir(self.folder):  # Leftovers of a killed run would otherwise stay forever.
            if _STALE_TEMP.match(entry.name):
                Path(entry.path).unlink(missing_ok=True)

    def write(self, index: int, frame: np.ndarray) -> None:
        """Encodes ``frame`` (uint8 H x W x 3 BGR) and stores it as frame ``index``.

        Raises:
            OutputError: The image could not be encoded or written; no partial file is left behind.
        """
        name = f"{index:06d}.{self.fmt}"
        target = self.folder / name
        ok, encoded = cv2.imencode(f".{self.fmt}", frame, self._params)
        if not ok:
            raise OutputError(f"{target}: OpenCV could not encode frame {index}")
        temp = self.folder / f".{name}.tmp"
        try:
            with open(temp, "wb") as file:
                file.write(encoded.data)
            os.replace(temp, target)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise OutputError(f"{target}: cannot write frame {index}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        """Nothing to flush: every image is complete when ``write`` returns."""

    def __enter__(self) -> ImageFolderSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def converted_shape(width: int, height: int) -> tuple[int, int]:
    """Shape of a ``width`` x ``height`` frame converted by :func:`convert_frame`."""
    return (height + height % 2) * 3 // 2, width + width % 2


def convert_frame(frame: np.ndarray, width: int, height: int, out: np.ndarray | None = None) -> np.ndarray:
    """A BGR frame as the encoder takes it: BT.709 I420, odd sides padded to even. Safe on any thread.

    Converting here costs a fraction of PyAV's (swscale) bgr24 -> yuv420p reformat, and the processor does it
    on its composite workers rather than on the one thread that feeds the encoder.

    Raises:
        ValueError: The frame is not ``height`` x ``width`` x 3.
    """
    if frame.shape != (height, width, 3):
        raise ValueError(f"frame is {frame.shape}, expected {(height, width, 3)}")
    if width % 2 or height % 2:
        # Replicating the last column/row keeps the edge colours intact where 4:2:0 subsamples them.
        frame = cv2.copyMakeBorder(frame, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
    return bgr_to_i420_bt709(frame, out)


def add_h264_stream(container: Any, fps: Fraction, width: int, height: int, crf: int, preset: str, threads: int,
                    **options: str) -> av.video.stream.VideoStream:
    """An x264 stream in ``container``: yuv420p at ``fps``, tagged BT.709, ``crf`` and ``preset``, ``threads``
    x264 threads (0: its own choice), its instruction set pinned (:func:`composer.output.x264.x264_options`), odd
    sides padded to even; ``options``: further x264 options."""
    stream = container.add_stream("libx264", fps, options={"crf": str(crf), "preset": preset, **_BT709_TAGS,
                                                           **x264_options(), **options})
    # H.264 4:2:0 needs even dimensions.
    stream.width, stream.height = width + width % 2, height + height % 2
    stream.pix_fmt = "yuv420p"
    stream.time_base = 1 / fps
    stream.codec_context.thread_count = threads
    return stream


class VideoSink:
    """Encodes frames into an H.264 (libx264, yuv420p) mp4, with the audio of another file if given.

    Frames are converted with the BT.709 matrix in limited range and the stream is tagged BT.709
    (primaries, transfer, matrix, range), so players that honour the tags, and those that assume BT.709
    for untagged HD video, show the colours that were rendered. The file is written with
    ``movflags=+faststart`` (the index before the media data) so that a browser can start playing it
    before it has downloaded it all.
    """

    def __init__(
        self,
        path: Path,
        fps: Fraction,
        width: int,
        height: int,
        *,
        audio: Path | None = None,
        crf: int = 18,
        preset: str = "veryfast",
        threads: int = 0,
    ) -> None:
        """Checks the audio and opens the temporary output file.

        Args:
            path: The mp4 to produce.
            fps: The exact frame rate, e.g. ``Fraction(30000, 1001)``.
            width: Frame width; odd sizes are padded to even.
            height: Frame height; odd sizes are padded to even.
            audio: A file whose first audio track is muxed in, cut to the video's length.
            crf: x264 constant rate factor (0 lossless, 18 visually lossless, 23 default).
            preset: x264 speed preset (ultrafast ... veryslow).
            threads: Encoder threads; 0 lets x264 choose.

        Raises:
            JobError: The frame rate or size is invalid, or the audio file cannot be read or holds no sample
                (see :func:`check_audio`).
            OutputError: The temporary file cannot be created.
        """
        if fps <= 0 or width <= 0 or height <= 0:
            raise JobError(f"{path}: invalid video settings: {width}x{height} at {fps} fps")
        self.path = Path(path)
        self.fps = Fraction(fps)
        self.width, self.height = width, height
        self.frames_written = 0
        self._temp = partial_path(self.path)
        # Reused for every frame; PyAV copies it into its own frame.
        self._i420 = np.empty(converted_shape(width, height), np.uint8)
        # The audio is checked first so that a bad file is reported before any frame is rendered.
        if audio is not None:
            check_audio(Path(audio))
        self._audio = _AudioTrack(Path(audio)) if audio is not None else None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._temp.touch()  # PyAV opens the file only at the first frame; fail before rendering.
            self._container = av.open(
                str(self._temp), "w", format="mp4", container_options={"movflags": "+faststart"}
            )
        except (OSError, av.error.FFmpegError) as exc:
            if self._audio is not None:
                self._audio.close()
            raise OutputError(f"{self.path}: cannot create the video: {exc}") from exc
        try:
            self._stream = self._add_video_stream(crf, preset, threads)
            if self._audio is not None:
                self._audio.attach(self._container)
        except BaseException:
            self.abort()
            raise

    def _add_video_stream(self, crf: int, preset: str, threads: int) -> av.video.stream.VideoStream:
        return add_h264_stream(self._container, self.fps, self.width, self.height, crf, preset, threads)

    def write(self, frame: np.ndarray) -> None:
        """Encodes the next frame (uint8 H x W x 3 BGR of the sink's size). Call from one thread.

        Raises:
            OutputError: The encoder or the file failed.
        """
        try:
            converted = convert_frame(frame, self.width, self.height, self._i420)
        except ValueError as exc:
            raise ValueError(f"{self.path}: {exc}") from None
        self.write_converted(converted)

    def write_converted(self, i420: np.ndarray) -> None:
        """Encodes the next frame, already converted by :func:`convert_frame`. Call from one thread.

        Raises:
            OutputError: The encoder or the file failed.
        """
        video_frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        video_frame.pts = self.frames_written
        try:
            self._container.mux(self._stream.encode(video_frame))
            self.frames_written += 1
            if self._audio is not None:
                # Audio follows the video as it grows, so the file is interleaved, and never passes its end.
                self._audio.write_until(self.frames_written / self.fps)
        except (OSError, av.error.FFmpegError) as exc:
            raise OutputError(f"{self.path}: cannot write frame {self.frames_written}: {exc}") from exc

    def close(self) -> None:
        """Flushes the encoders, finishes the file and renames it into place.

        Raises:
            OutputError: Finishing failed; the temporary file is removed.
        """
        try:
            if self.frames_written == 0:
                raise OutputError(f"{self.path}: no frames were written")
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.finish(self.frames_written / self.fps)
            self._container.close()
            os.replace(self._temp, self.path)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, (OSError, av.error.FFmpegError)):
                raise OutputError(f"{self.path}: cannot finish the video: {exc}") from exc
            raise

    def abort(self) -> None:
        """Discards the video: closes everything and removes the temporary file."""
        if self._audio is not None:
            self._audio.close()
        try:
            self._container.close()
        except (OSError, av.error.FFmpegError):
            pass  # The file is deleted next; its trailer does not matter.
        self._temp.unlink(missing_ok=True)

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def check_audio(path: Path) -> None:
    """Refuse an audio file without a single sample; warn in one line about one that is silent throughout.

    Decodes from the start up to the first sample that is not silence, so only a silent file is decoded whole.
    A silent track is still muxed: it may be meant, but it is more often the wrong file.

    Raises:
        JobError: the file cannot be read as audio, has no audio track, or its track has no samples.
    """
    track = _AudioTrack(path)
    try:
        samples, audible = track.scan()
    finally:
        track.close()
    if samples == 0:
        raise JobError(f"{path}: the audio track has no samples")
    if not audible:
        log.warning("%s: the audio track is silent (all of its %d samples are zero); it is muxed all the same",
                    path, samples)


class _AudioTrack:
    """Decodes an audio file, resamples it for AAC and encodes it into the output, cut at a given time."""

    def __init__(self, path: Path) -> None:
        try:
            self._source = av.open(str(path))
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise JobError(f"{path}: cannot be read as audio: {exc}") from exc
        if not self._source.streams.audio:
            self._source.close()
            raise JobError(f"{path}: has no audio track")
        self._input = self._source.streams.audio[0]

    def scan(self) -> tuple[int, bool]:
        """Decodes from the start: the samples seen, and whether one is not silence (the scan stops there)."""
        samples = 0
        try:
            for packet in self._source.demux(self._input):
                for frame in packet.decode():
                    samples += frame.samples
                    silence = 128 if frame.format.name.startswith("u8") else 0  # unsigned 8-bit PCM idles at 128
                    if frame.samples and np.any(frame.to_ndarray() != silence):
                        return samples, True
        except av.error.FFmpegError as exc:
            raise JobError(f"{self._source.name}: audio cannot be decoded: {exc}") from exc
        return samples, False

    def attach(self, output: av.container.OutputContainer) -> None:
        """Adds the AAC stream to ``output``; must come before the first packet is muxed."""
        rate = self._input.codec_context.sample_rate
        self.rate = rate if rate in _AAC_RATES else 48000  # Rates AAC cannot carry are resampled.
        # AAC keeps mono as mono; anything wider is downmixed to stereo, which every player handles.
        layout = "mono" if self._input.codec_context.layout.nb_channels == 1 else "stereo"
        self._stream = output.add_stream("aac", rate=self.rate, layout=layout)
        self._output = output
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=self.rate)
        self._fifo = av.AudioFifo()
        self._decoded = self._resampled()
        self.samples_written = 0

    def _resampled(self) -> Iterator[av.AudioFrame]:
        try:
            for packet in self._source.demux(self._input):
                for frame in packet.decode():
                    yield from self._resampler.resample(frame)
        except av.error.FFmpegError as exc:
            raise JobError(f"{self._source.name}: audio cannot be decoded: {exc}") from exc
        yield from self._resampler.resample(None)

    def write_until(self, seconds: Fraction) -> None:
        """Encodes source audio up to ``seconds`` from the start (or to its end, if shorter)."""
        limit = int(seconds * self.rate)
        while self.samples_written < limit:
            need = limit - self.samples_written
            while self._fifo.samples < need and (frame := next(self._decoded, None)) is not None:
                frame.pts = None  # The FIFO would insist on gapless input timestamps.
                self._fifo.write(frame)
            if self._fifo.samples == 0:
                return  # The source ended before the video.
            chunk = self._fifo.read(min(need, self._fifo.samples))
            assert chunk is not None, "a FIFO holding samples gives a frame"
            chunk.pts, chunk.time_base = self.samples_written, Fraction(1, self.rate)
            self._output.mux(self._stream.encode(chunk))
            self.samples_written += chunk.samples

    def finish(self, seconds: Fraction) -> None:
        """Encodes the audio up to ``seconds``, flushes the encoder and closes the source."""
        self.write_until(seconds)
        self._output.mux(self._stream.encode(None))
        self.close()

    def close(self) -> None:
        self._source.close()
