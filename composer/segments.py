"""An H.264 video written as complete segments, so that an interrupted run keeps what it encoded.

Frames are encoded once, into segments of :data:`~composer.resume.SEGMENT_FRAMES` frames, each a complete mp4
renamed into the video's hidden parts folder when it is finished. Closing the sink joins the segments into
the final file by copying their packets (no second encode) while the audio is encoded alongside, then removes
the parts folder. An aborted run keeps the finished segments for ``--resume``.
"""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from composer.errors import OutputError, StageError
from composer.resume import SEGMENT_FRAMES, part_path, parts_folder
from composer.writers import VideoSink, _AudioTrack


class SegmentedVideoSink:
    """A video sink that writes segments from frame ``start`` on and joins them all on close.

    Args:
        path: the final mp4.
        fps: exact frame rate.
        width, height: frame size.
        audio: a file whose first audio track is muxed in on join, cut to the video's length.
        crf, preset: x264 settings.
        start: the first frame this run writes; a multiple of the segment length.
        segment: frames per segment.
    """

    def __init__(self, path: Path, fps: Fraction, width: int, height: int, *, audio: Path | None = None,
                 crf: int = 18, preset: str = "veryfast", start: int = 0, segment: int = SEGMENT_FRAMES) -> None:
        if start % segment:
            raise ValueError(f"start {start} is not a multiple of the segment length {segment}")
        self.path, self.fps, self.width, self.height = Path(path), Fraction(fps), width, height
        self.audio, self.crf, self.preset, self.segment = audio, crf, preset, segment
        self.folder = parts_folder(self.path)
        self.frames_written = start
        self._part: VideoSink | None = None
        if audio is not None:
            _AudioTrack(Path(audio)).close()  # a bad audio file is reported before any frame is rendered
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create {self.folder}: {exc.strerror or exc}") from exc

    def write(self, frame: np.ndarray) -> None:
        """Encode the next frame; a segment that fills up is finished and kept."""
        self._next_part().write(frame)
        self._written()

    def write_converted(self, i420: np.ndarray) -> None:
        """Encode the next frame, converted by :func:`composer.writers.convert_frame`."""
        self._next_part().write_converted(i420)
        self._written()

    def _next_part(self) -> VideoSink:
        if self._part is None:
            index = self.frames_written // self.segment
            self._part = VideoSink(part_path(self.folder, index), self.fps, self.width, self.height,
                                   crf=self.crf, preset=self.preset)
        return self._part

    def _written(self) -> None:
        self.frames_written += 1
        if self.frames_written % self.segment == 0:
            part, self._part = self._part, None
            assert part is not None
            part.close()

    def close(self) -> None:
        """Finish the last segment and join every segment, with the audio, into the final file."""
        if self._part is not None:
            part, self._part = self._part, None
            part.close()
        parts = []
        while part_path(self.folder, len(parts)).exists():
            parts.append(part_path(self.folder, len(parts)))
        if not parts:
            raise OutputError(f"{self.path}: no frames were written")
        try:
            _join(parts, self.path, self.fps, self.audio)
        except Exception as exc:
            raise StageError("mux", f"frames 0-{self.frames_written - 1} (joining the video)", exc) from exc
        shutil.rmtree(self.folder, ignore_errors=True)

    def abort(self) -> None:
        """Drop the unfinished segment; finished ones stay for ``--resume``."""
        if self._part is not None:
            part, self._part = self._part, None
            part.abort()

    def __enter__(self) -> SegmentedVideoSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _join(parts: list[Path], target: Path, fps: Fraction, audio: Path | None) -> None:
    """Copy the segments' packets, shifted in time, into one mp4 (temporary name, then renamed)."""
    temp = target.parent / f".{target.name}.partial.mp4"
    track = _AudioTrack(audio) if audio is not None else None
    try:
        with av.open(str(temp), "w", format="mp4", container_options={"movflags": "+faststart"}) as out:
            stream = None
            frames = 0
            for part in parts:
                with av.open(str(part)) as source:
                    video = source.streams.video[0]
                    if stream is None:
                        stream = out.add_stream_from_template(video)
                        if track is not None:
                            track.attach(out)
                    shift = int(Fraction(frames) / fps / video.time_base)
                    for packet in source.demux(video):
                        if packet.dts is None:
                            continue  # the demuxer's end-of-stream marker
                        packet.pts += shift
                        packet.dts += shift
                        packet.stream = stream
                        out.mux(packet)
                        frames += 1
                if track is not None:
                    track.write_until(Fraction(frames) / fps)
            if track is not None:
                track.finish(Fraction(frames) / fps)
                track = None
        os.replace(temp, target)
    except (OSError, av.error.FFmpegError) as exc:
        temp.unlink(missing_ok=True)
        raise OutputError(f"{target}: cannot join the video segments: {exc}") from exc
    finally:
        if track is not None:
            track.close()
