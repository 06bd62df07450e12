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
from composer.output.writers import partial_path


def join_segments(parts: list[Path], target: Path, fps: Fraction, audio: Path | None) -> None:
    """Copy the segments' packets, shifted in time, and those of the encoded ``audio`` into one mp4 (temporary
    name, then renamed)."""
    temp = partial_path(target)
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
                    assert video.time_base is not None, "FFmpeg gives every stream it opens a time base"
                    shift = int(Fraction(frames) / fps / video.time_base)
                    for packet in source.demux(video):
                        if packet.pts is None or packet.dts is None:
                            continue  # the demuxer's end-of-stream marker (an MP4's packets carry both)
                        packet.pts += shift
                        packet.dts += shift
                        packet.stream = stream
                        out.mux(packet)
                        frames += 1
                # The audio of this part's time goes right after it, so that the file interleaves the two.
                end, last = Fraction(frames) / fps, part is parts[-1]
                while pending is not None and (last or _starts(pending) < end):
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


def _starts(packet: av.Packet) -> Fraction:
    """When a demuxed ``packet`` starts, in seconds."""
    assert packet.pts is not None and packet.time_base is not None, "the demuxer times every packet it gives"
    return packet.pts * packet.time_base
