"""Where template frames come from: a video file, a folder of numbered images, or one still image.

Every source knows its exact frame count and size up front and yields frames sequentially, as fresh
C-contiguous ``uint8`` H x W x 3 BGR arrays that the caller may keep. A call to ``frames(start, stop)``
costs at most one seek, however long the range, so a cache can fill a chunk at decode speed.
"""

from __future__ import annotations

import abc
import logging
import os
import re
from collections.abc import Generator, Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from composer.errors import JobError, SourceError

__all__ = ["FolderSource", "IMAGE_SUFFIXES", "StillSource", "TemplateSource", "VideoSource", "open_template"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})

_LAST_INTEGER = re.compile(r"(\d+)(?!.*\d)")

log = logging.getLogger("composer")

_NTSC_RATES = (24, 30, 48, 60, 120)  # x 1000/1001


class TemplateSource(abc.ABC):
    """A sequence of template frames with a known count and size, read by one thread at a time.

    Attributes:
        path: The file or folder the frames come from.
        count: The exact number of frames.
        width: Frame width in pixels.
        height: Frame height in pixels.
        fps: The nominal frame rate, or None where the source has none (image folders, stills).
    """

    path: Path
    count: int
    width: int
    height: int
    fps: Fraction | None

    @abc.abstractmethod
    def frames(self, start: int = 0, stop: int | None = None) -> Generator[np.ndarray, None, None]:
        """Yields frames ``start .. stop - 1`` in order; a reader that stops early closes the generator, which
        releases what the decoding holds at once.

        Args:
            start: Index of the first frame.
            stop: One past the last frame; None means the end of the source.

        Yields:
            A new C-contiguous uint8 H x W x 3 BGR array per frame, owned by the caller.

        Raises:
            ValueError: The range is outside ``0 .. count``.
            SourceError: A frame could not be read or decoded.
        """

    def close(self) -> None:  # noqa: B027 - sources without resources need no cleanup
        """Releases the source's files; the source cannot be read afterwards."""

    def __enter__(self) -> TemplateSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _range(self, start: int, stop: int | None) -> tuple[int, int]:
        stop = self.count if stop is None else stop
        if not 0 <= start <= stop <= self.count:
            raise ValueError(f"{self.path}: frame range {start}..{stop} is outside 0..{self.count}")
        return start, stop


class VideoSource(TemplateSource):
    """Frames of a video file, decoded with PyAV (FFmpeg) using its frame/slice threads.

    The frame count and each frame's presentation timestamp come from demuxing the whole video stream
    once at open time (no decoding), because the count a container declares is often wrong. A video whose
    frames are not evenly spaced (variable frame rate) is taken frame by frame, in order, with a warning:
    output frame timing comes from ``[output] fps``, never from the template's timestamps. A video with rotation
    metadata (a phone's portrait clip) is taken as stored, unturned, with a warning: its rectangles, its output
    and every tool of composer see the frames as they are decoded.

    Attributes:
        rotation: the turn the file asks a player to give its frames, degrees counter-clockwise; 0 for none.
    """

    def __init__(self, path: Path, *, threads: int = 0) -> None:
        """Opens the video and indexes its frames.

        Args:
            path: The video file.
            threads: Decoder threads; 0 lets FFmpeg choose.

        Raises:
            SourceError: The file cannot be opened, has no video stream, or has no frames.
        """
        self.path = Path(path)
        self._threads = threads
        self._container, self._stream = self._open()
        try:
            self._pts, self._keyframes, self.count = self._index()
        except BaseException:
            self._container.close()
            raise
        if self.count == 0:
            self._container.close()
            raise SourceError(f"{self.path}: the video stream has no frames")
        ctx = self._stream.codec_context
        self.width, self.height = ctx.width, ctx.height
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = _nominal_rate(Fraction(rate)) if rate else None
        if self._pts is not None and _is_variable(self._pts):
            log.warning("%s: variable frame rate; frames are taken in order, %d frames", self.path, self.count)
        self.rotation = self._rotation()
        if self.rotation:
            turn = f"{abs(self.rotation)} degrees {'counter-clockwise' if self.rotation > 0 else 'clockwise'}"
            log.warning("%s: the video asks players to turn it %s; composer reads, renders and writes its frames "
                        "as stored, unturned, and the rectangles refer to those", self.path, turn)

    def _open(self) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"{self.path}: cannot be opened as a video: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = self._threads
        return container, stream

    def _rotation(self) -> int:
        """The turn a player gives the frames, in degrees counter-clockwise in (-180, 180]; 0 for none.

        FFmpeg hands the stream's display matrix to the decoded frames, so the first frame is decoded to read it;
        an older FFmpeg gave a ``rotate`` tag instead, in degrees clockwise.
        """
        tag = self._stream.metadata.get("rotate")
        if tag is not None:
            try:
                return _half_turns(-float(tag))
            except ValueError:
                return 0
        try:
            self._rewind(0)
            frame = next(self._decoded(), None)
        except (av.error.FFmpegError, SourceError):
            return 0  # reading the frames reports the fault, naming the frame
        return _half_turns(float(getattr(frame, "rotation", 0) or 0)) if frame is not None else 0

    def _index(self) -> tuple[list[int] | None, list[int] | None, int]:
        """Returns sorted frame pts, sorted keyframe pts (both None if timestamps are missing), count."""
        pts: list[int] = []
        keyframes: list[int] = []
        has_pts = True
        try:
            for packet in self._container.demux(self._stream):
                # A size-0 packet only flushes the decoder; a discarded one (edit list) is never shown.
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    has_pts = False
                pts.append(packet.pts if packet.pts is not None else -1)
                if packet.is_keyframe and packet.pts is not None:
                    keyframes.append(packet.pts)
        except av.error.FFmpegError as exc:
            raise SourceError(f"{self.path}: cannot be read after {len(pts)} frames: {exc}") from exc
        if not has_pts:
            return None, None, len(pts)
        pts.sort()
        keyframes.sort()
        return pts, keyframes, len(pts)

    def frames(self, start: int = 0, stop: int | None = None) -> Generator[np.ndarray, None, None]:
        """Yields frames ``start .. stop - 1``, each a new C-contiguous uint8 BGR array.

        Decoding starts at the keyframe before ``start`` (one seek) and runs sequentially to ``stop``.
        """
        start, stop = self._range(start, stop)
        if start == stop:
            return
        self._rewind(start)
        # Without timestamps the decoder restarts at frame 0 and frames are told apart by counting.
        index = start if self._pts is not None else 0
        try:
            for frame in self._decoded():
                if not self._is_frame(frame, index, start):
                    if self._pts is None:
                        index += 1  # Counted, since frames are told apart by position alone.
                    continue
                if (frame.width, frame.height) != (self.width, self.height):
                    raise SourceError(
                        f"{self.path}: frame {index} is {frame.width}x{frame.height}, "
                        f"the video is {self.width}x{self.height}"
                    )
                yield np.ascontiguousarray(frame.to_ndarray(format="bgr24"))
                index += 1
                if index == stop:
                    return
        except av.error.FFmpegError as exc:
            raise SourceError(f"{self.path}: frame {index} could not be decoded: {exc}") from exc
        raise SourceError(
            f"{self.path}: frame {index} could not be decoded: the video ended after {index} of "
            f"{self.count} frames"
        )

    def _is_frame(self, frame: av.VideoFrame, index: int, start: int) -> bool:
        """Whether a decoded frame is frame ``index``; False for frames before ``start``."""
        if self._pts is None:
            return index >= start
        if frame.pts is None or frame.pts < self._pts[index]:
            return False
        if frame.pts > self._pts[index]:
            raise SourceError(f"{self.path}: frame {index} could not be decoded (the decoder skipped it)")
        return True

    def _rewind(self, start: int) -> None:
        """Moves the demuxer to the keyframe at or before frame ``start``, with one seek."""
        if self._pts is None or self._keyframes is None:
            # Without timestamps (raw elementary streams) seeking is impossible; reopening is not a seek.
            self._container.close()
            self._container, self._stream = self._open()
            return
        target = self._pts[start]
        # Seek to the keyframe's own pts rather than the target's: a demuxer whose index is keyed by
        # decode time could otherwise land on the next keyframe, past ``start``.
        earlier = [pts for pts in self._keyframes if pts <= target]
        seek_to = earlier[-1] if earlier else self._pts[0]
        try:
            self._container.seek(seek_to, stream=self._stream, backward=True)
        except av.error.FFmpegError as exc:
            raise SourceError(f"{self.path}: cannot seek to frame {start}: {exc}") from exc

    def _decoded(self) -> Iterator[av.VideoFrame]:
        for packet in self._container.demux(self._stream):
            yield from packet.decode()

    def close(self) -> None:
        """Closes the video file."""
        self._container.close()


class FolderSource(TemplateSource):
    """Frames stored as .png/.jpg/.jpeg files in one folder, ordered by the last integer in each name.

    ``frame_2.png`` comes before ``frame_10.png``. Hidden files and other suffixes are ignored.
    """

    def __init__(self, path: Path) -> None:
        """Lists the folder and reads the first frame for the size.

        Raises:
            JobError: The folder has no images, a name has no integer, or two names share one.
            SourceError: The first image cannot be read.
        """
        self.path = Path(path)
        self._files = _numbered_images(self.path)
        self.count = len(self._files)
        self.fps = None
        first = _read_image(self._files[0])
        self.height, self.width = first.shape[:2]

    def frames(self, start: int = 0, stop: int | None = None) -> Generator[np.ndarray, None, None]:
        """Reads images ``start .. stop - 1``, each a new C-contiguous uint8 BGR array."""
        start, stop = self._range(start, stop)
        for file in self._files[start:stop]:
            image = _read_image(file)
            if image.shape[:2] != (self.height, self.width):
                raise SourceError(
                    f"{file}: is {image.shape[1]}x{image.shape[0]}, the other frames are "
                    f"{self.width}x{self.height}"
                )
            yield image


class StillSource(TemplateSource):
    """One image file used as a one-frame template."""

    def __init__(self, path: Path) -> None:
        """Reads the image.

        Raises:
            SourceError: The image cannot be read.
        """
        self.path = Path(path)
        self._image = _read_image(self.path)
        self.count = 1
        self.height, self.width = self._image.shape[:2]
        self.fps = None

    def frames(self, start: int = 0, stop: int | None = None) -> Generator[np.ndarray, None, None]:
        """Yields a copy of the image if the range includes frame 0."""
        start, stop = self._range(start, stop)
        if start < stop:
            yield self._image.copy()


def open_template(path: Path, *, threads: int = 0) -> TemplateSource:
    """Opens a template: a folder of images, a still image, or otherwise a video file.

    Args:
        path: The folder or file.
        threads: Decoder threads for a video (0: FFmpeg chooses); ignored for images.

    Raises:
        JobError: The path does not exist, or an image folder is unusable.
        SourceError: The file cannot be read.
    """
    path = Path(path)
    if path.is_dir():
        return FolderSource(path)
    if not path.is_file():
        raise JobError(f"template: no such file or folder: {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return StillSource(path)
    return VideoSource(path, threads=threads)


def _nominal_rate(rate: Fraction) -> Fraction:
    """The NTSC rate (24000/1001, 30000/1001, ...) within 0.01% of ``rate``, else ``rate`` itself.

    FFmpeg estimates the rate of a container with millisecond timestamps (Matroska, WebM) from the
    timestamps, which gives e.g. 19001/317 for a short 60000/1001 video; the output should get the real one.
    """
    for frames in _NTSC_RATES:
        nominal = Fraction(frames * 1000, 1001)
        if abs(rate - nominal) < nominal / 10_000:
            return nominal
    return rate


def _half_turns(degrees: float) -> int:
    """``degrees`` as a whole angle in (-180, 180]."""
    angle = round(degrees) % 360
    return angle - 360 if angle > 180 else angle


def _is_variable(pts: list[int]) -> bool:
    """Whether sorted timestamps are unevenly spaced.

    One tick of slack, because containers with a coarse time base (Matroska's milliseconds) store a
    30000/1001 fps video as steps of 33 and 34.
    """
    steps = np.diff(np.asarray(pts, dtype=np.int64))
    return steps.size > 1 and (int(steps.min()) <= 0 or int(steps.max()) - int(steps.min()) > 1)


def _numbered_images(folder: Path) -> list[Path]:
    numbered: dict[int, Path] = {}
    for file in folder.iterdir():
        if file.name.startswith(".") or file.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if not file.is_file():
            if file.is_symlink() and not file.exists():
                # Skipping it would shift every later frame by one, and the error would blame the rectangles.
                raise JobError(f"{file}: a template frame that is a broken symbolic link (to {os.readlink(file)})")
            continue
        match = _LAST_INTEGER.search(file.stem)
        if match is None:
            raise JobError(f"{file}: a template frame's name must contain its frame number")
        number = int(match.group(1))
        if number in numbered:
            raise JobError(f"{file}: frame number {number} is also used by {numbered[number].name}")
        numbered[number] = file
    if not numbered:
        raise JobError(f"{folder}: the template folder has no .png/.jpg/.jpeg images")
    return [numbered[number] for number in sorted(numbered)]


def _read_image(file: Path) -> np.ndarray:
    # np.fromfile + imdecode, because cv2.imread cannot open non-ASCII paths on Windows.
    try:
        data = np.fromfile(file, dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"{file}: cannot be read: {exc}") from exc
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"{file}: is not a readable image")
    return image
