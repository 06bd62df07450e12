"""Finished video segments and an encoded audio track joined into one mp4 by copying their packets (no second
encode), the audio interleaved with the video it plays under."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from composer.errors import OutputError


def join_segments(parts: list[Path], target: Path, fps: Fraction, audio: Path | None) -> None:
    """Copy the segments' packets, shifted in time, and those of the encoded ``audio`` into one mp4 (temporary
    name, then renamed)."""
    temp = target.parent / f".{target.name}.partial.mp4"
    try:
        with contextlib.ExitStack() as files:
            out = files.enter_context(av.open(str(temp), "w", format="mp4",
                                              container_options={"movflags": "+faststart"}))
            sound_in, sounds = _audio_packets(files, audio)
            pending = next(sounds, None)
            stream = sound_out = None
            frames = 0
            for part in parts:
                with av.open(str(part)) as source:
                    video = source.streams.video[0]
                    if stream is None:
                        stream = out.add_stream_from_template(video)
                        if sound_in is not None:
                            sound_out = out.add_stream_from_template(sound_in)
                    shift = int(Fraction(frames) / fps / video.time_base)
                    for packet in source.demux(video):
                        if packet.dts is None:
                            continue  # the demuxer's end-of-stream marker
                        packet.pts += shift
                        packet.dts += shift
                        packet.stream = stream
                        out.mux(packet)
                        frames += 1
                # The audio of this part's time goes right after it, so that the file interleaves the two.
                end, last = Fraction(frames) / fps, part is parts[-1]
                while pending is not None and (last or pending.pts * pending.time_base < end):
                    pending.stream = sound_out
                    out.mux(pending)
                    pending = next(sounds, None)
        os.replace(temp, target)
    except (OSError, av.error.FFmpegError) as exc:
        temp.unlink(missing_ok=True)
        raise OutputError(f"{target}: cannot join the video segments: {exc}") from exc


def _audio_packets(files: contextlib.ExitStack, audio: Path | None) -> tuple[av.audio.stream.AudioStream | None,
                                                                            Iterator[av.Packet]]:
    """The encoded ``audio``'s stream and its packets (none without audio), its file held open by ``files``."""
    if audio is None:
        return None, iter(())
    sound = files.enter_context(av.open(str(audio)))
    stream = sound.streams.audio[0]
    return stream, (packet for packet in sound.demux(stream) if packet.dts is not None)
