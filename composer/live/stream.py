"""Where a live stream goes: MPEG-TS (H.264) that a player reads while it is written, or numbered images.

MPEG-TS needs no index at the end, so the file (or standard output) plays however far it has got, and a stream
cut short by Ctrl-C still plays up to its last frame. Each packet goes out as soon as it is encoded: x264 runs
with ``tune=zerolatency`` (no frame held back for lookahead or B-frames) and the muxer flushes every packet.
"""

from __future__ import annotations

import contextlib
import errno
import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

import av
import numpy as np

from composer.config.job import OutputSpec
from composer.errors import JobError, OutputError
from composer.live.clock import now
from composer.output.safety import Output
from composer.output.writers import ImageFolderSink, add_h264_stream, convert_frame, converted_shape

STDOUT = "-"
KEYFRAME_SECONDS = 1  # a player that joins the stream waits at most this long for a picture


class Stream(Protocol):
    """A live stream: frames in order, one call each, from one thread."""

    def write(self, index: int, frame: np.ndarray) -> tuple[float, float]:
        """Write slot ``index``'s frame (BGR uint8); returns when it was encoded and when written."""

    def close(self) -> None:
        """Finish the stream so that it plays to its end."""


def is_ts(output: str) -> bool:
    """Whether ``--output`` names an MPEG-TS stream (``-`` or a ``.ts`` file) rather than an image folder.

    Raises:
        JobError: a file name of another kind (a live stream cannot be an mp4: that needs its index at the end).
    """
    if output == STDOUT or Path(output).suffix.lower() == ".ts":
        return True
    if Path(output).suffix and not Path(output).is_dir():
        raise JobError(f"--output {output}: a live stream goes to an MPEG-TS file (.ts), to - (standard "
                       "output) or to a folder of numbered images")
    return False


class ReaderGone(OutputError):
    """The program reading the stream from standard output closed it (a player quit): the stream ends there."""


def _broken_pipe(exc: BaseException) -> bool:
    return isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == errno.EPIPE


class TsStream:
    """H.264 in MPEG-TS, with the job's x264 settings (``crf``, ``preset``), BT.709 as the file renders are.

    Args:
        output: a ``.ts`` path, or ``-`` for standard output.
        fps, width, height: the stream's rate and frame size (odd sides padded to even).
        spec: the job's output section (crf, preset); x264 chooses its own threads.
    """

    def __init__(self, output: str, fps: Fraction, width: int, height: int, spec: OutputSpec) -> None:
        self.name = "standard output" if output == STDOUT else output
        self.width, self.height = width, height
        self._gone = False  # standard output's reader closed it
        self._i420 = np.empty(converted_shape(width, height), np.uint8)
        try:
            self._file: BinaryIO = (os.fdopen(os.dup(1), "wb", buffering=0) if output == STDOUT
                                    else open(output, "wb", buffering=0))  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise OutputError(f"{self.name}: cannot write the stream: {exc.strerror or exc}") from exc
        try:
            self._container = av.open(self._file, "w", format="mpegts", container_options={"flush_packets": "1"})
            self._stream = add_h264_stream(self._container, fps, width, height, spec.crf, spec.preset, 0,
                                           tune="zerolatency", g=str(max(1, round(fps * KEYFRAME_SECONDS))))
        except (OSError, av.error.FFmpegError) as exc:
            self._file.close()
            raise OutputError(f"{self.name}: cannot start the stream: {exc}") from exc

    def write(self, index: int, frame: np.ndarray) -> tuple[float, float]:
        video_frame = av.VideoFrame.from_ndarray(convert_frame(frame, self.width, self.height, self._i420),
                                                 format="yuv420p")
        video_frame.pts = index
        try:
            packets = self._stream.encode(video_frame)
            encoded = now()
            self._container.mux(packets)
        except (OSError, av.error.FFmpegError) as exc:
            if self.name == "standard output" and _broken_pipe(exc):
                self._gone = True
                raise ReaderGone(f"standard output: its reader closed it at frame {index}") from exc
            raise OutputError(f"{self.name}: cannot write frame {index}: {exc}") from exc
        return encoded, now()

    def close(self) -> None:
        """Flush the encoder and close the container and the file (only the file once its reader has gone)."""
        if self._gone:
            with contextlib.suppress(OSError, av.error.FFmpegError):
                self._container.close()
            with contextlib.suppress(OSError):
                self._file.close()
            return
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
        except (OSError, av.error.FFmpegError) as exc:
            raise OutputError(f"{self.name}: cannot finish the stream: {exc}") from exc
        finally:
            self._file.close()

    def __enter__(self) -> TsStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # Interrupted or failed, the stream still ends cleanly, so it plays up to its last frame; the error that
        # stopped it is the one to report, not a second one from closing.
        if exc is None:
            self.close()
        else:
            with contextlib.suppress(OutputError):
                self.close()


class ImageStream:
    """Numbered images ``000000.png`` ... (the job's format and quality), one per slot of the stream."""

    def __init__(self, folder: str, spec: OutputSpec) -> None:
        self._sink = ImageFolderSink(Path(folder), spec.format, spec.quality)

    def write(self, index: int, frame: np.ndarray) -> tuple[float, float]:
        self._sink.write(index, frame)
        done = now()
        return done, done

    def close(self) -> None:
        self._sink.close()

    def __enter__(self) -> ImageStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_stream(output: str, fps: Fraction, width: int, height: int, spec: OutputSpec) -> TsStream | ImageStream:
    """The stream ``--output`` names (see :func:`is_ts`)."""
    if is_ts(output):
        return TsStream(output, fps, width, height, spec)
    return ImageStream(output, spec)


def stream_output(output: str) -> Output:
    """``--output`` as an output to check against the job's inputs: a stream file, or a folder of images."""
    return Output("--output", output, folder=not is_ts(output))
