from __future__ import annotations

import errno
import os
import wave
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from composer.errors import JobError, OutputError
from composer.output import writers
from composer.output.video_segments import SegmentedVideoSink
from composer.output.writers import ImageFolderSink, VideoSink
from tests.conftest import write_wav

W, H, N = 64, 48, 12


def _frame(index: int, width: int = W, height: int = H) -> np.ndarray:
    rng = np.random.default_rng(index)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _probe(path: Path) -> dict[str, object]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        audio = container.streams.audio[0] if container.streams.audio else None
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "frames": len(packets),
            "rate": stream.average_rate,
            "duration": float(stream.duration * stream.time_base),
            "audio": float(audio.duration * audio.time_base) if audio is not None else None,
        }


# ImageFolderSink


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_image_folder_writes_numbered_files(tmp_path: Path, fmt: str) -> None:
    folder = tmp_path / "out" / "frames"
    with ImageFolderSink(folder, fmt=fmt, quality=90) as sink:
        for index in range(N):
            sink.write(index, _frame(index))
    assert sorted(os.listdir(folder)) == [f"{index:06d}.{fmt}" for index in range(N)]
    if fmt == "png":
        assert all(np.array_equal(cv2.imread(str(folder / f"{i:06d}.png")), _frame(i)) for i in range(N))


def test_image_folder_files_appear_only_when_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        assert not Path(dst).exists()
        assert cv2.imread(str(src)) is not None  # Complete before it gets its final name.
        renames.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(writers.os, "replace", replace)
    sink = ImageFolderSink(tmp_path)
    sink.write(7, _frame(7))
    assert renames == [(".000007.png.tmp", "000007.png")]


def test_image_folder_is_thread_safe(tmp_path: Path) -> None:
    frames = [_frame(index) for index in range(40)]
    with ImageFolderSink(tmp_path) as sink, ThreadPoolExecutor(4) as pool:
        list(pool.map(sink.write, range(40), frames))
    assert sorted(os.listdir(tmp_path)) == [f"{index:06d}.png" for index in range(40)]
    assert all(np.array_equal(cv2.imread(str(tmp_path / f"{i:06d}.png")), frames[i]) for i in range(40))


def test_image_folder_write_error_removes_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(src: str | Path, dst: str | Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers.os, "replace", full_disk)
    sink = ImageFolderSink(tmp_path)
    with pytest.raises(OutputError, match=r"000003\.png: cannot write frame 3: No space left"):
        sink.write(3, _frame(3))
    assert os.listdir(tmp_path) == []


def test_image_folder_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OutputError, match="cannot create the output folder"):
        ImageFolderSink(tmp_path / "file" / "frames")


def test_image_folder_removes_stale_temps(tmp_path: Path) -> None:
    (tmp_path / ".000004.png.tmp").write_bytes(b"half")
    (tmp_path / "keep.txt").write_text("mine")
    ImageFolderSink(tmp_path)
    assert os.listdir(tmp_path) == ["keep.txt"]


# VideoSink


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30000, 1001)])
def test_video_sink_writes_h264(tmp_path: Path, fps: Fraction) -> None:
    target = tmp_path / "out" / "result.mp4"
    with VideoSink(target, fps, W, H, preset="ultrafast") as sink:
        for index in range(N):
            sink.write(_frame(index))
    probe = _probe(target)
    assert probe["codec"] == "h264" and probe["pix_fmt"] == "yuv420p" and probe["size"] == (W, H)
    assert probe["frames"] == N and probe["rate"] == fps
    assert probe["duration"] == pytest.approx(N / fps)
    assert os.listdir(target.parent) == ["result.mp4"]


def test_video_sink_colours_survive(tmp_path: Path) -> None:
    # The colour tags must describe the conversion the sink applies (BT.709), or decoders shift the colours.
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (40, 120, 200)]
    target = tmp_path / "result.mp4"
    with VideoSink(target, Fraction(25), W, H, crf=0) as sink:
        for colour in colours:
            sink.write(np.full((H, W, 3), colour, np.uint8))
    with av.open(str(target)) as container:
        decoded = [f.to_ndarray(format="bgr24")[H // 2, W // 2] for f in container.decode(video=0)]
    for colour, pixel in zip(colours, decoded, strict=True):
        assert np.abs(pixel.astype(int) - colour).max() <= 3, (colour, pixel)


def test_video_sink_pads_odd_sizes(tmp_path: Path) -> None:
    target = tmp_path / "result.mp4"
    with VideoSink(target, Fraction(25), 65, 47, preset="ultrafast") as sink:
        for index in range(3):
            sink.write(_frame(index, 65, 47))
    assert _probe(target)["size"] == (66, 48)


def test_video_sink_exception_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "result.mp4"
    with pytest.raises(RuntimeError, match="model failed"):
        with VideoSink(target, Fraction(25), W, H, preset="ultrafast") as sink:
            for index in range(N):
                sink.write(_frame(index))
            raise RuntimeError("model failed")
    assert os.listdir(tmp_path) == []


def test_video_sink_without_frames(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="no frames were written"):
        with VideoSink(tmp_path / "result.mp4", Fraction(25), W, H):
            pass
    assert os.listdir(tmp_path) == []


def test_video_sink_rejects_wrong_frame_size(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path / "result.mp4", Fraction(25), W, H)
    with pytest.raises(ValueError, match="expected"):
        sink.write(_frame(0, W + 2, H))
    sink.abort()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (16000, 1)])
def test_video_sink_audio_is_cut_to_video(tmp_path: Path, rate: int, channels: int) -> None:
    audio = write_wav(tmp_path / "speech.wav", seconds=2.0, rate=rate, channels=channels)
    target = tmp_path / "result.mp4"
    fps = Fraction(30000, 1001)
    with VideoSink(target, fps, W, H, audio=audio, preset="ultrafast") as sink:
        for index in range(N):
            sink.write(_frame(index))
    probe = _probe(target)
    assert probe["frames"] == N
    assert abs(probe["audio"] - probe["duration"]) <= 1 / fps


def _pcm_wav(path: Path, samples: np.ndarray, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(width)
        file.setframerate(16000)
        file.writeframes(samples.tobytes())
    return path


@pytest.mark.parametrize("sink", [VideoSink, SegmentedVideoSink])
def test_audio_without_samples_is_refused_before_the_video_starts(tmp_path: Path, sink) -> None:
    empty = _pcm_wav(tmp_path / "empty.wav", np.zeros(0, np.int16))
    with pytest.raises(JobError) as info:
        sink(tmp_path / "out" / "result.mp4", Fraction(25), W, H, audio=empty)
    assert str(info.value) == f"{empty}: the audio track has no samples"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize(("width", "silence"), [(2, np.zeros(8000, np.int16)), (1, np.full(8000, 128, np.uint8))])
def test_silent_audio_is_muxed_with_a_one_line_warning(tmp_path: Path, caplog, width, silence) -> None:
    quiet = _pcm_wav(tmp_path / "quiet.wav", silence, width)
    target = tmp_path / "result.mp4"
    with caplog.at_level("WARNING", logger="composer"):
        with VideoSink(target, Fraction(25), W, H, audio=quiet, preset="ultrafast") as sink:
            for index in range(N):
                sink.write(_frame(index))
    messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert messages == [f"{quiet}: the audio track is silent (all of its 8000 samples are zero); it is muxed all "
                        "the same"]
    assert _probe(target)["audio"] == pytest.approx(N / 25, abs=0.03)


def test_audio_with_sound_late_in_the_file_gives_no_warning(tmp_path: Path, caplog) -> None:
    samples = np.zeros(16000, np.int16)
    samples[-1] = 1
    with caplog.at_level("WARNING", logger="composer"):
        writers.check_audio(_pcm_wav(tmp_path / "late.wav", samples))
    assert not caplog.records


def test_video_sink_shorter_audio(tmp_path: Path) -> None:
    audio = write_wav(tmp_path / "speech.wav", seconds=0.2)
    target = tmp_path / "result.mp4"
    with VideoSink(target, Fraction(25), W, H, audio=audio, preset="ultrafast") as sink:
        for index in range(N):
            sink.write(_frame(index))
    assert _probe(target)["audio"] == pytest.approx(0.2, abs=0.03)


def test_video_sink_audio_from_a_video(tmp_path: Path) -> None:
    speech = write_wav(tmp_path / "speech.wav", seconds=1.0)
    clip = tmp_path / "clip.mp4"
    with VideoSink(clip, Fraction(25), W, H, audio=speech, preset="ultrafast") as sink:
        for index in range(25):
            sink.write(_frame(index))
    target = tmp_path / "result.mp4"
    with VideoSink(target, Fraction(25), W, H, audio=clip, preset="ultrafast") as sink:
        for index in range(N):
            sink.write(_frame(index))
    assert _probe(target)["audio"] == pytest.approx(N / 25, abs=1 / 25)


@pytest.mark.parametrize("content", [None, b"not audio"])
def test_video_sink_bad_audio(tmp_path: Path, content: bytes | None) -> None:
    audio = tmp_path / "speech.wav"
    if content is not None:
        audio.write_bytes(content)
    with pytest.raises(JobError, match="speech.wav: cannot be read as audio"):
        VideoSink(tmp_path / "out" / "result.mp4", Fraction(25), W, H, audio=audio)
    assert not (tmp_path / "out").exists()


def test_video_sink_audio_file_without_audio(tmp_path: Path) -> None:
    silent = tmp_path / "silent.mp4"
    with VideoSink(silent, Fraction(25), W, H, preset="ultrafast") as sink:
        sink.write(_frame(0))
    with pytest.raises(JobError, match="silent.mp4: has no audio track"):
        VideoSink(tmp_path / "result.mp4", Fraction(25), W, H, audio=silent)


def test_video_sink_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OutputError, match="cannot create the video"):
        VideoSink(tmp_path / "file" / "result.mp4", Fraction(25), W, H)
