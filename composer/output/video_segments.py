"""An H.264 video written as complete segments, so that an interrupted run keeps what it encoded.

Frames are encoded once, into segments of :data:`~composer.output.resume.SEGMENT_FRAMES` frames, each a complete mp4
renamed into the video's hidden parts folder when it is finished. The audio is encoded into a file of its own on
a thread beside the render, as soon as the video's length is known. Closing the sink joins the segments and the
audio into the final file by copying their packets (no second encode), then removes the parts folder. An
aborted run keeps the finished segments for ``--resume``.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import shutil
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from composer.errors import OutputError, StageError
from composer.output.mux import join_segments
from composer.output.resume import SEGMENT_FRAMES, X264_THREADS, part_path, parts_folder
from composer.output.writers import VideoSink, _AudioTrack, check_audio, convert_frame, converted_shape, partial_path
from composer.runtime.threads import Pool, Stopped, Supervisor, get, put


def encoder_backlog(encoders: int, segment: int = SEGMENT_FRAMES) -> int:
    """Frames each encoder thread may have waiting: none for one encoder (it runs on the caller's thread), else
    half a segment. While one segment's frames arrive at the pace of the rest of the render, its encoder keeps
    up as far as it can and the backlog takes the rest, which it works through during the next segment; on
    2 cores a quarter-segment backlog gave 58 fps where half gave 64 (light benchmark model)."""
    return 0 if encoders == 1 else segment // 2


def pooled_frames(encoders: int, backlog: int) -> int:
    """4:2:0 frame buffers a sink with ``encoders`` encoders keeps: each encoder's backlog and the frame it
    is encoding; none for one encoder, which encodes the caller's frame."""
    return encoders * (backlog + 1) if encoders > 1 else 0


def open_segment(folder: Path, number: int, fps: Fraction, width: int, height: int, crf: int,
                 preset: str) -> VideoSink:
    """An encoder for segment ``number`` of the parts folder ``folder``. Its settings depend on the job alone
    (:data:`~composer.output.resume.X264_THREADS`), so the segment's bytes are the same whoever encodes it; it
    is written under a temporary name and takes the segment's name when closed, so only a finished segment
    counts for ``--resume`` and for the join."""
    return VideoSink(part_path(folder, number), fps, width, height, crf=crf, preset=preset, threads=X264_THREADS)


class _Segments:
    """Encodes the frames it is given into whole segments, one part file after another."""

    def __init__(self, sink: SegmentedVideoSink) -> None:
        self.sink = sink
        self.part: VideoSink | None = None

    def add(self, index: int, i420: np.ndarray) -> None:
        """Encode output frame ``index``; the frame that fills its segment finishes the part file."""
        sink = self.sink
        if self.part is None:
            number = index // sink.segment
            self.part = open_segment(sink.folder, number, sink.fps, sink.width, sink.height, sink.crf, sink.preset)
        self.part.write_converted(i420)
        if (index + 1) % sink.segment == 0:
            self.finish()

    def finish(self) -> None:
        if self.part is not None:
            part, self.part = self.part, None
            part.close()

    def abort(self) -> None:
        if self.part is not None:
            part, self.part = self.part, None
            part.abort()


class SegmentedVideoSink:
    """A video sink that writes segments from frame ``start`` on and joins them all on close.

    With ``encoders`` above 1, segments are encoded side by side: segment ``k`` goes to encoder thread
    ``k % encoders``, each running an x264 of its own. The caller hands frames over in order and goes on while
    an encoder still works through its segment (up to ``backlog`` frames, copied into pooled buffers), so
    the next segment's encoder starts on time. Independent encoders share the cores better than one x264's
    frame threads, which wait on each other (measured: docs/performance.md).

    Args:
        path: the final mp4.
        fps: exact frame rate.
        width, height: frame size.
        audio: a file whose first audio track is muxed in on join, cut to the video's length; with ``frames``
            given, it is encoded on a thread of its own from the start.
        crf, preset: x264 settings (every segment on :data:`~composer.output.resume.X264_THREADS` threads).
        encoders: segments encoded at once, each on its own thread; 1 encodes on the caller's thread.
        backlog: frames each encoder thread may have waiting; None: :func:`encoder_backlog`.
        start: the first frame this run writes; a multiple of the segment length.
        segment: frames per segment.
        frames: the video's length in frames, when known: the audio is then encoded from the start.
        run: the supervisor of the render the sink writes for; the encoder and audio threads share its stop
            event and first error, so a failure on either side stops both (None: one of the sink's own).
    """

    def __init__(self, path: Path, fps: Fraction, width: int, height: int, *, audio: Path | None = None,
                 crf: int = 18, preset: str = "veryfast", encoders: int = 1,
                 backlog: int | None = None, start: int = 0, segment: int = SEGMENT_FRAMES,
                 frames: int | None = None, run: Supervisor | None = None) -> None:
        if start % segment:
            raise ValueError(f"start {start} is not a multiple of the segment length {segment}")
        if backlog is None:
            backlog = encoder_backlog(encoders, segment)
        if encoders < 1 or (encoders > 1 and backlog < 1):
            raise ValueError(f"need one encoder or more, and a backlog for several: {encoders}, {backlog}")
        self.path, self.fps, self.width, self.height = Path(path), Fraction(fps), width, height
        self.audio, self.crf, self.preset, self.segment = audio, crf, preset, segment
        self.frames = frames
        self.run = run if run is not None else Supervisor()
        self.folder = parts_folder(self.path)
        self.frames_written = start
        if audio is not None:
            check_audio(Path(audio))  # a bad audio file is reported before any frame is rendered
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create {self.folder}: {exc.strerror or exc}") from exc
        self._segments = [_Segments(self) for _ in range(encoders)]
        self._threads: Supervisor | None = None
        self._audio: _EncodedAudio | None = None
        self._joined = False
        try:
            self._start(encoders, backlog)
        except BaseException:
            self.abort()  # the threads it started, were it cut short after them (Ctrl-C included)
            raise

    def _start(self, encoders: int, backlog: int) -> None:
        """The encoder threads (with several encoders) and the audio's."""
        width, height, audio, frames = self.width, self.height, self.audio, self.frames
        if encoders == 1:
            self._i420 = np.empty(converted_shape(width, height), np.uint8)  # write's conversion, reused
        else:
            self._free = Pool([np.empty(converted_shape(width, height), np.uint8)
                               for _ in range(pooled_frames(encoders, backlog))])
            self._queues: list[queue.Queue[tuple[int, np.ndarray] | None]] = [
                queue.Queue(maxsize=backlog) for _ in range(encoders)]
            self._threads = Supervisor(self.run)
            for k in range(encoders):
                self._threads.spawn(f"encode-{k}", functools.partial(self._encode, k))
        if audio is not None and frames is not None:
            self._audio = _EncodedAudio(Path(audio), frames, self.fps, self.path, self.run)

    def segment_encoder(self, number: int) -> VideoSink:
        """A fresh encoder for segment ``number``, for a caller that renders whole segments on several threads
        (one encoder each): closing it puts the finished segment in place. Not for a sink with encoder threads
        of its own."""
        if self._threads is not None:
            raise ValueError("a sink with encoder threads takes its frames in order through write")
        return open_segment(self.folder, number, self.fps, self.width, self.height, self.crf, self.preset)

    def write(self, frame: np.ndarray) -> None:
        """Encode the next frame (BGR); a segment that fills up is finished and kept."""
        if self._threads is None:
            self.write_converted(convert_frame(frame, self.width, self.height, self._i420))
        else:
            self._hand_over(lambda out: convert_frame(frame, self.width, self.height, out))

    def write_converted(self, i420: np.ndarray) -> None:
        """Encode the next frame, converted by :func:`composer.output.writers.convert_frame`."""
        if self._threads is None:
            self._segments[0].add(self.frames_written, i420)
            self.frames_written += 1
        else:
            self._hand_over(lambda out: np.copyto(out, i420))

    def _hand_over(self, fill: Callable[[np.ndarray], object]) -> None:
        """Fill a pooled buffer with the next frame and queue it for its segment's encoder thread."""
        threads = self._threads
        assert threads is not None
        index = self.frames_written
        try:
            buffer = self._free.take(threads.stop)
            fill(buffer)
            put(self._queues[(index // self.segment) % len(self._queues)], (index, buffer), threads.stop)
        except Stopped:
            self._stop_encoders(finish=False)  # an encoder failed: raises its error
            raise
        self.frames_written += 1

    def _encode(self, k: int) -> None:
        """Encoder thread ``k``: the frames of its segments, until a ``None`` says there are no more."""
        threads = self._threads
        assert threads is not None
        segments = self._segments[k]
        index = self.frames_written
        try:
            while (item := get(self._queues[k], threads.stop)) is not None:
                index, buffer = item
                segments.add(index, buffer)
                self._free.give(buffer)
            segments.finish()
        except Stopped:
            raise
        except Exception as exc:
            raise StageError("write", f"frame {index}", exc) from exc

    def _stop_encoders(self, finish: bool) -> None:
        """Join the encoder threads, after their last frames (``finish``) or at once; re-raise their error.

        They are joined before it returns however it ends: a Ctrl-C while the last frames are handed over stops
        them at once instead, so no encoder is left running under a sink that is being aborted.
        """
        threads = self._threads
        if threads is None:
            return
        try:
            if finish:
                for q in self._queues:
                    put(q, None, threads.stop)
        except Stopped:
            pass  # an encoder failed; join says how
        except BaseException as exc:
            threads.fail(exc)
            self._join_encoders(threads)
            raise
        if not finish:
            threads.stop.set()
        self._join_encoders(threads)

    def _join_encoders(self, threads: Supervisor) -> None:
        try:
            threads.join()
        finally:
            self._threads = None
            for segments in self._segments:
                segments.abort()  # what a failed or stopped encoder left open

    def join(self) -> None:
        """Finish the last segments and join every segment, with the audio, into the final file. The segments
        stay until :meth:`close`: a run stopped before then can still be resumed."""
        if self._joined:
            return
        try:
            self._stop_encoders(finish=True)
            self._segments[0].finish()
            parts: list[Path] = []
            while part_path(self.folder, len(parts)).exists():
                parts.append(part_path(self.folder, len(parts)))
            if not parts:
                raise OutputError(f"{self.path}: no frames were written")
            audio = self._encoded_audio()
            try:
                join_segments(parts, self.path, self.fps, audio)
            except Exception as exc:
                raise StageError("mux", f"frames 0-{self.frames_written - 1} (joining the video)", exc) from exc
        finally:
            self._drop_audio()
        self._joined = True

    def close(self) -> None:
        """:meth:`join`, then remove the segments."""
        self.join()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _encoded_audio(self) -> Path | None:
        """The audio encoded for the frames written (waiting for it, or encoding it now if the video's length
        was not known in advance or came out otherwise); None without audio."""
        if self.audio is None:
            return None
        if self._audio is None or self._audio.frames != self.frames_written:
            self._drop_audio()
            self._audio = _EncodedAudio(Path(self.audio), self.frames_written, self.fps, self.path, self.run)
        return self._audio.wait()

    def _drop_audio(self) -> None:
        audio, self._audio = self._audio, None
        if audio is not None:
            audio.cancel()

    def abort(self) -> None:
        """Drop the unfinished segments; finished ones stay for ``--resume``."""
        try:
            self._stop_encoders(finish=False)
        except Exception:  # noqa: BLE001 - the sink is aborted for an earlier error, the one to report
            pass
        for segments in self._segments:
            segments.abort()
        self._drop_audio()

    def __enter__(self) -> SegmentedVideoSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _EncodedAudio:
    """The audio track, cut at the end of frame ``frames``, encoded into an AAC file beside the video on a thread
    of its own, on ``run``: its failure stops the render at once, and the render's failure stops it.

    Encoding it while the video is rendered takes it out of the join, which runs on one core after the last
    frame: 40 s of speech took 0.34 s of a 0.46 s join on the development machine.
    """

    def __init__(self, source: Path, frames: int, fps: Fraction, video: Path, run: Supervisor) -> None:
        self.source, self.frames, self.seconds = source, frames, Fraction(frames) / fps
        self.path = partial_path(video, ".m4a")
        self._cancelled = threading.Event()  # this encoding only, not the run
        self._threads = Supervisor(run)
        self._threads.spawn("audio", self._encode)

    def _encode(self) -> None:
        try:
            self._write()
        except (OSError, av.error.FFmpegError) as exc:
            error = OutputError(f"{self.path}: cannot encode the audio of {self.source}: {exc}")
            raise StageError("mux", f"frames 0-{self.frames - 1} (the audio)", error) from error

    def _write(self) -> None:
        track = _AudioTrack(self.source)
        try:
            with av.open(str(self.path), "w", format="mp4") as out:
                track.attach(out)
                second = 1
                while second < self.seconds:  # a second at a time, so that a stopped run stops it promptly
                    if self._threads.stop.is_set() or self._cancelled.is_set():
                        raise Stopped
                    track.write_until(Fraction(second))
                    second += 1
                track.finish(self.seconds)
        finally:
            track.close()

    def wait(self) -> Path:
        """The encoded file, once it is finished; raises the run's first error."""
        self._threads.join()
        return self.path

    def cancel(self) -> None:
        """Stop the encoding, if it still runs, and remove the file."""
        self._cancelled.set()
        with contextlib.suppress(Exception):
            self._threads.join()
        self.path.unlink(missing_ok=True)
