"""Media formats end to end: BT.709 colour, the mp4's layout and timing, audio inputs, template containers."""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.errors import OutputError, StageError
from composer.inputs.sources import VideoSource, open_template
from composer.model.zoo import build_elementwise
from composer.output.colour import BT709_MATRIX, bgr_to_i420_bt709
from composer.output.resume import parts_folder
from composer.output.video_segments import SegmentedVideoSink
from composer.output.writers import VideoSink
from tests.conftest import BORDER, CROP, boxes_for, read_folder, write_job, write_wav

W, H = 64, 48
BT709 = 1  # AVCOL_PRI_BT709 = AVCOL_TRC_BT709 = AVCOL_SPC_BT709
LIMITED = 1  # AVCOL_RANGE_MPEG


def _scene(index: int, width: int = W, height: int = H) -> np.ndarray:
    """A smooth gradient with a moving disc whose brightness encodes ``index``: survives lossy coding."""
    x = np.linspace(0, 120, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 80, height, dtype=np.float32)[:, None]
    frame = np.stack(np.broadcast_arrays(x + y, 60 + x / 2, 150 - y), axis=-1).astype(np.uint8)
    centre = (8 + 5 * index % (width - 16), height // 2)
    cv2.circle(frame, centre, min(width, height) // 5, (20 + 9 * index % 200,) * 3, -1)
    return np.ascontiguousarray(frame)


def _write_video(
    path: Path,
    count: int,
    *,
    fmt: str | None = None,
    codec: str = "libx264",
    fps: Fraction = Fraction(25),
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    size: tuple[int, int] = (W, H),
) -> Path:
    """Encodes ``count`` scenes; ``pts`` in ``time_base`` units makes the frame timing irregular."""
    options = {"deadline": "realtime", "cpu-used": "8"} if codec == "libvpx-vp9" else {"preset": "ultrafast"}
    time_base = time_base or 1 / fps
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, fps, options=options)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.codec_context.time_base = time_base
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(bgr_to_i420_bt709(_scene(index, *size)), format="yuv420p")
            frame.pts, frame.time_base = (index if pts is None else pts[index]), time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _encode_audio(source: Path, target: Path, codec: str) -> Path:
    """Re-encodes a wav with one of PyAV's audio encoders (aac into m4a, libmp3lame into mp3)."""
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV's FFmpeg has no {codec} encoder")
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream = out.add_stream(codec, rate=44100, layout="stereo")
        fmt = stream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(format=fmt, layout="stereo", rate=44100)
        fifo = av.AudioFifo()
        for frame in inp.decode(audio=0):
            for resampled in resampler.resample(frame):
                resampled.pts = None
                fifo.write(resampled)
        size = stream.codec_context.frame_size or 1152
        while fifo.samples:
            chunk = fifo.read(min(size, fifo.samples))
            chunk.pts = None
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    return target


def _boxes(path: Path) -> list[str]:
    """The top-level box types of an ISO BMFF (mp4) file, in file order."""
    types = []
    with open(path, "rb") as file:
        while header := file.read(8):
            size, kind = struct.unpack(">I4s", header)
            consumed = 8
            if size == 1:  # a 64-bit size follows the type
                size = struct.unpack(">Q", file.read(8))[0]
                consumed = 16
            types.append(kind.decode("latin-1"))
            if size == 0:  # the box runs to the end of the file
                break
            file.seek(size - consumed, 1)
    return types


def _probe(path: Path) -> dict[str, object]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        packets = [p for p in container.demux(video) if p.size]
        return {
            "frames": len(packets),
            "rate": video.average_rate,
            "duration": Fraction(video.duration) * video.time_base,
            "audio": Fraction(audio.duration) * audio.time_base if audio is not None else None,
        }


def _decoded_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# bgr_to_i420_bt709


def _reference_i420(frame: np.ndarray) -> np.ndarray:
    """BT.709 limited range in float64: Y per pixel, U and V as 2x2 means, each rounded once."""
    height, width = frame.shape[:2]
    matrix = BT709_MATRIX.astype(np.float64)
    yuv = frame.astype(np.float64) @ matrix[:, :3].T + matrix[:, 3]
    chroma = yuv[..., 1:].reshape(height // 2, 2, width // 2, 2, 2).mean(axis=(1, 3))
    planes = [yuv[..., 0], chroma[..., 0], chroma[..., 1]]
    return np.concatenate([np.rint(p).ravel() for p in planes]).astype(np.uint8).reshape(-1, width)


def test_bt709_primaries_and_extremes() -> None:
    # BT.709 limited range by hand: red is Y = 16 + 219 * 0.2126, V = 128 + 112.
    cases = {
        (0, 0, 0): (16, 128, 128),
        (255, 255, 255): (235, 128, 128),
        (0, 0, 255): (63, 102, 240),
        (0, 255, 0): (173, 42, 26),
        (255, 0, 0): (32, 240, 118),
    }
    for bgr, expected in cases.items():
        i420 = bgr_to_i420_bt709(np.full((4, 6, 3), bgr, np.uint8))
        assert (i420[0, 0], i420[4, 0], i420[5, 3]) == expected, bgr


@pytest.mark.parametrize("kind", ["scene", "noise"])
def test_bt709_matches_the_formula(kind: str) -> None:
    if kind == "scene":
        frame = _scene(3, 320, 240)
    else:
        frame = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    got = bgr_to_i420_bt709(frame).astype(int)
    diff = np.abs(got - _reference_i420(frame))
    # float32 against float64 may round a value that sits on .5 the other way, nothing more.
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-4


def test_bt709_plane_layout_and_out() -> None:
    frame = np.zeros((4, 8, 3), np.uint8)
    frame[:, 4:] = (255, 0, 0)  # the right half blue
    out = np.full((6, 8), 7, np.uint8)
    assert bgr_to_i420_bt709(frame, out) is out
    u = out[4:5].reshape(2, 4)
    v = out[5:6].reshape(2, 4)
    assert (u[:, :2] == 128).all() and (u[:, 2:] == 240).all() and (v[:, 2:] == 118).all()


def test_bt709_buffers_follow_the_frame_size_and_thread() -> None:
    # The work buffers are reused per thread: sizes may alternate and threads may share nothing.
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((240, 320), (6, 8), (240, 320))]
    expected = [_reference_i420(f).astype(int) for f in frames]
    for frame, want in zip(frames, expected, strict=True):
        assert np.abs(bgr_to_i420_bt709(frame).astype(int) - want).max() <= 1
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(bgr_to_i420_bt709, frames * 4))
    for frame_out, want in zip(got, expected * 4, strict=True):
        assert np.abs(frame_out.astype(int) - want).max() <= 1


def test_bt709_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="even sides"):
        bgr_to_i420_bt709(np.zeros((5, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        bgr_to_i420_bt709(np.zeros((4, 8), np.uint8))
    with pytest.raises(ValueError, match="out must be"):
        bgr_to_i420_bt709(np.zeros((4, 8, 3), np.uint8), np.zeros((4, 8), np.uint8))


# VideoSink: colour, layout, timing, audio


def test_video_is_bt709_tagged_and_colours_survive(tmp_path: Path) -> None:
    width, height = 160, 120
    patches = {(0, 0, 255): (0, 0), (0, 255, 0): (80, 0), (255, 0, 0): (0, 60), (128, 128, 128): (80, 60)}
    frame = np.zeros((height, width, 3), np.uint8)
    for colour, (x, y) in patches.items():
        frame[y : y + 60, x : x + 80] = colour
    target = tmp_path / "result.mp4"
    with VideoSink(target, Fraction(25), width, height, crf=0) as sink:
        sink.write(frame)
    with av.open(str(target)) as container:
        ctx = container.streams.video[0].codec_context  # what the container and stream headers say
        assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range) == (BT709,) * 3 + (LIMITED,)
        decoded = next(container.decode(video=0))
    assert (decoded.colorspace, decoded.color_range) == (BT709, LIMITED)  # the H.264 VUI
    # PyAV converts with the frame's tags, as a player that honours them does.
    pixels = decoded.to_ndarray(format="bgr24")
    for colour, (x, y) in patches.items():
        patch = pixels[y + 10 : y + 50, x + 10 : x + 70].astype(int)
        assert np.abs(patch - colour).max() <= 3, (colour, patch.mean(axis=(0, 1)))


@pytest.mark.parametrize("audio", [False, True])
def test_video_index_comes_before_media_data(tmp_path: Path, audio: bool) -> None:
    speech = write_wav(tmp_path / "speech.wav", seconds=1.0) if audio else None
    target = tmp_path / "result.mp4"
    with VideoSink(target, Fraction(25), W, H, audio=speech, preset="ultrafast") as sink:
        for index in range(10):
            sink.write(_scene(index))
    boxes = _boxes(target)
    assert boxes[0] == "ftyp" and "moov" in boxes and "mdat" in boxes
    assert boxes.index("moov") < boxes.index("mdat"), boxes


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30000, 1001), Fraction(24000, 1001)])
def test_video_exact_count_and_rate(tmp_path: Path, fps: Fraction) -> None:
    count = 17
    target = tmp_path / "result.mp4"
    with VideoSink(target, fps, W, H, audio=write_wav(tmp_path / "speech.wav"), preset="ultrafast") as sink:
        for index in range(count):
            sink.write(_scene(index))
    probe = _probe(target)
    assert probe["frames"] == count and _decoded_count(target) == count
    assert probe["rate"] == fps and probe["duration"] == count / fps
    assert abs(probe["audio"] - probe["duration"]) <= 1 / fps


@pytest.mark.parametrize("kind", ["wav", "m4a", "mp3", "mp4", "mkv"])
def test_audio_inputs_are_cut_to_the_video(tmp_path: Path, kind: str) -> None:
    fps, count = Fraction(30000, 1001), 20
    audio = write_wav(tmp_path / "speech.wav", seconds=1.5)
    if kind == "m4a":
        audio = _encode_audio(audio, tmp_path / "speech.m4a", "aac")
    elif kind == "mp3":
        audio = _encode_audio(audio, tmp_path / "speech.mp3", "libmp3lame")
    elif kind in ("mp4", "mkv"):  # the audio track of a video file
        clip = tmp_path / "clip.mp4"
        with VideoSink(clip, Fraction(25), W, H, audio=audio, preset="ultrafast") as sink:
            for index in range(37):
                sink.write(_scene(index))
        if kind == "mkv":  # remuxed: the same AAC packets in Matroska
            with av.open(str(clip)) as inp, av.open(str(tmp_path / "clip.mkv"), "w") as out:
                stream = out.add_stream_from_template(inp.streams.audio[0])
                for packet in inp.demux(inp.streams.audio[0]):
                    if packet.dts is not None:
                        packet.stream = stream
                        out.mux(packet)
            clip = tmp_path / "clip.mkv"
        audio = clip
    target = tmp_path / "result.mp4"
    with VideoSink(target, fps, W, H, audio=audio, preset="ultrafast") as sink:
        for index in range(count):
            sink.write(_scene(index))
    probe = _probe(target)
    assert probe["frames"] == count
    assert abs(probe["audio"] - probe["duration"]) <= 1 / fps, (probe["audio"], probe["duration"])


def _assert_finished_mp4(path: Path, count: int, fps: Fraction) -> None:
    """Index first, BT.709 tags, exactly ``count`` frames at ``fps``, audio (if any) within a frame."""
    boxes = _boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range) == (BT709,) * 3 + (LIMITED,)
        first = next(container.decode(video=0))
        assert (first.colorspace, first.color_range) == (BT709, LIMITED)
    probe = _probe(path)
    assert probe["frames"] == count == _decoded_count(path)
    assert probe["rate"] == fps and probe["duration"] == count / fps
    if probe["audio"] is not None:
        assert abs(probe["audio"] - probe["duration"]) <= 1 / fps, (probe["audio"], probe["duration"])


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30000, 1001)])
def test_joined_segments_keep_layout_tags_and_timing(tmp_path: Path, fps: Fraction) -> None:
    # What `composer run` writes: segments of a few frames here, joined by packet copy with the audio.
    target = tmp_path / "result.mp4"
    with SegmentedVideoSink(
        target, fps, W, H, audio=write_wav(tmp_path / "speech.wav"), preset="ultrafast", segment=4
    ) as sink:
        for index in range(10):
            sink.write(_scene(index))
    _assert_finished_mp4(target, 10, fps)


def _audio_packets(path: Path) -> list[tuple[int, bytes]]:
    with av.open(str(path)) as container:
        return [(p.pts, bytes(p)) for p in container.demux(audio=0) if p.size]


@pytest.mark.parametrize("known", [True, False])
def test_joined_audio_is_the_single_stream_audio(tmp_path: Path, known: bool) -> None:
    # Known length: the audio is encoded beside the render; unknown: at close. Either way, the packets and their
    # timing are those of one file encoded with its audio in a single pass.
    wav = write_wav(tmp_path / "speech.wav", seconds=3, rate=16000, channels=1)
    single = tmp_path / "single.mp4"
    with VideoSink(single, Fraction(25), W, H, audio=wav, preset="ultrafast") as sink:
        for index in range(30):
            sink.write(_scene(index))
    joined = tmp_path / "joined.mp4"
    with SegmentedVideoSink(joined, Fraction(25), W, H, audio=wav, preset="ultrafast", encoders=2, backlog=2,
                            segment=8, frames=30 if known else None) as sink:
        for index in range(30):
            sink.write(_scene(index))
    assert _audio_packets(joined) == _audio_packets(single) and len(_audio_packets(joined)) > 10
    _assert_finished_mp4(joined, 30, Fraction(25))
    assert not list(tmp_path.glob(".joined.mp4.partial*"))


def test_audio_is_encoded_while_the_frames_are_written(tmp_path: Path, monkeypatch) -> None:
    from composer.output import writers

    finished: list[str] = []
    original = writers._AudioTrack.finish

    def recording(self, seconds):
        finished.append(threading.current_thread().name)
        original(self, seconds)

    monkeypatch.setattr(writers._AudioTrack, "finish", recording)
    wav = write_wav(tmp_path / "speech.wav", seconds=2)
    with SegmentedVideoSink(tmp_path / "result.mp4", Fraction(25), W, H, audio=wav, preset="ultrafast",
                            segment=4, frames=10) as sink:
        for index in range(10):
            sink.write(_scene(index))
        deadline = time.monotonic() + 10
        while not finished and time.monotonic() < deadline:
            time.sleep(0.01)
        assert finished == ["composer-audio"], "the audio was not encoded before the sink was closed"
    assert finished == ["composer-audio"]  # closing copied it, and encoded nothing more
    _assert_finished_mp4(tmp_path / "result.mp4", 10, Fraction(25))


def test_audio_follows_the_frames_written_when_they_differ_from_the_length_given(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "speech.wav", seconds=3)
    with SegmentedVideoSink(tmp_path / "result.mp4", Fraction(25), W, H, audio=wav, preset="ultrafast",
                            segment=4, frames=40) as sink:
        for index in range(10):
            sink.write(_scene(index))
    _assert_finished_mp4(tmp_path / "result.mp4", 10, Fraction(25))


def test_an_aborted_sink_stops_its_audio_promptly_and_leaves_no_audio_file(tmp_path: Path, monkeypatch) -> None:
    from composer.output import writers

    original = writers._AudioTrack.write_until

    def slow(self, seconds):  # 120 s of audio now take 12 s or more to encode
        time.sleep(0.1)
        original(self, seconds)

    monkeypatch.setattr(writers._AudioTrack, "write_until", slow)
    wav = write_wav(tmp_path / "speech.wav", seconds=120, rate=8000, channels=1)
    began = time.perf_counter()
    with pytest.raises(RuntimeError), SegmentedVideoSink(
            tmp_path / "result.mp4", Fraction(25), W, H, audio=wav, preset="ultrafast", segment=4,
            frames=3000) as sink:
        sink.write(_scene(0))
        time.sleep(0.2)
        raise RuntimeError("the render failed")
    assert time.perf_counter() - began < 5
    assert not [t for t in threading.enumerate() if t.name == "composer-audio"]
    assert not list(tmp_path.glob(".result.mp4.partial*")) and not (tmp_path / "result.mp4").exists()


def test_ctrl_c_while_the_last_frames_are_handed_over_joins_the_encoders(tmp_path: Path, monkeypatch) -> None:
    """Closing a sink hands each encoder thread its end; a Ctrl-C there stops them, and they are joined before
    the interrupt goes on (before, the sink forgot its threads first and left them encoding under the abort)."""
    from composer.output import video_segments

    original = video_segments.put

    def interrupted(q, item, stop):
        if item is None:
            raise KeyboardInterrupt
        original(q, item, stop)

    monkeypatch.setattr(video_segments, "put", interrupted)
    with pytest.raises(KeyboardInterrupt), SegmentedVideoSink(
            tmp_path / "result.mp4", Fraction(25), W, H, preset="ultrafast", segment=4, encoders=2, backlog=2) as sink:
        for index in range(6):
            sink.write(_scene(index))
    assert not [t for t in threading.enumerate() if t.name.startswith("composer-encode") and t.is_alive()]
    assert not (tmp_path / "result.mp4").exists()


def _packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def test_segments_encoded_side_by_side_match_one_encoder(tmp_path: Path) -> None:
    # Each segment is its own x264 stream, so two encoders on alternate segments give the same packets as one.
    def encode(name: str, encoders: int) -> Path:
        target = tmp_path / name
        with SegmentedVideoSink(target, Fraction(25), W, H, preset="ultrafast", encoders=encoders,
                                backlog=2, segment=4) as sink:
            for index in range(11):
                sink.write(_scene(index))
        return target

    one, two = encode("one.mp4", 1), encode("two.mp4", 2)
    assert _packets(one) == _packets(two) and len(_packets(two)) == 11
    _assert_finished_mp4(two, 11, Fraction(25))


def test_every_segment_is_encoded_on_one_x264_thread(tmp_path: Path, monkeypatch) -> None:
    # The last segment too: x264's threads are fixed, so a segment's bytes do not depend on the machine.
    opened: list[int] = []
    original = VideoSink.__init__

    def recording(self, *args, **kwargs):
        opened.append(kwargs["threads"])
        original(self, *args, **kwargs)

    monkeypatch.setattr(VideoSink, "__init__", recording)
    target = tmp_path / "result.mp4"
    with SegmentedVideoSink(target, Fraction(25), W, H, preset="ultrafast", encoders=2, backlog=2, segment=4,
                            frames=11) as sink:
        for index in range(11):
            sink.write(_scene(index))
    assert opened == [1, 1, 1]
    _assert_finished_mp4(target, 11, Fraction(25))


@pytest.mark.parametrize("at", [0, 6, 10])
def test_encoder_thread_failure_is_reported_with_its_frame(tmp_path: Path, monkeypatch, at: int) -> None:
    original, calls = VideoSink.write_converted, iter(range(100))

    def failing(self, i420):
        if next(calls) == at:
            raise OutputError(f"{self.path}: No space left on device")
        original(self, i420)

    monkeypatch.setattr(VideoSink, "write_converted", failing)
    target = tmp_path / "result.mp4"
    began = time.perf_counter()
    with pytest.raises(StageError) as caught:
        with SegmentedVideoSink(target, Fraction(25), W, H, preset="ultrafast", encoders=2,
                                backlog=2, segment=4) as sink:
            for index in range(11):
                sink.write(_scene(index))
    assert time.perf_counter() - began < 5
    assert caught.value.stage == "write" and isinstance(caught.value.__cause__, OutputError)
    assert str(caught.value).startswith("write failed at frame ")
    assert not target.exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("composer-encode")]


def test_aborted_encoders_keep_finished_segments(tmp_path: Path) -> None:
    target = tmp_path / "result.mp4"
    sink = SegmentedVideoSink(target, Fraction(25), W, H, preset="ultrafast", encoders=2, backlog=2,
                              segment=4)
    for index in range(9):
        sink.write(_scene(index))
    time.sleep(0.5)  # let the encoders finish segments 0 and 1
    sink.abort()
    parts = sorted(p.name for p in parts_folder(target).iterdir())
    assert parts == ["part-000000.mp4", "part-000001.mp4"]
    assert not target.exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("composer-encode")]


# Templates of every kind through `composer run`


def _job(
    root: Path,
    key: str,
    template: Path,
    count: int,
    outputs: int | None = None,
    output: dict[str, object] | None = None,
) -> Path:
    """A job over ``template`` (``key`` = video | frames) with the elementwise model."""
    (root / "rects.json").write_text(json.dumps(boxes_for(count)))
    sections: dict[str, dict[str, object]] = {"template": {key: str(template), "rects": "rects.json"}}
    feature_shape = None
    if outputs is not None:
        np.save(root / "features.npy", np.random.default_rng(7).normal(size=(outputs, 5)).astype(np.float32))
        sections["features"] = {"path": "features.npy", "window": 4}
        feature_shape = (20,)
    build_elementwise(root / "model.onnx", window=CROP - 2 * BORDER, in_channels=6, feature_shape=feature_shape, seed=3)
    sections["model"] = {
        "path": "model.onnx",
        "crop": CROP,
        "border": BORDER,
        "inputs": ["crop", "masked"],
        "mask": [2, 10, 16, 8],
    }
    sections["output"] = {"frames": "out", **(output or {})}
    sections["run"] = {"batch": 3, "workers": 2, "chunk": 4}
    return write_job(root / "job.toml", sections)


def _run(*args: str) -> None:
    result = CliRunner().invoke(main, ["run", *args, "-q"])
    assert result.exit_code == 0, result.output


def _template(root: Path, kind: str, count: int) -> tuple[str, Path]:
    """Writes a template of ``kind``; returns its job key and path."""
    if kind in ("mp4", "mkv", "mov", "webm"):
        codec = "libvpx-vp9" if kind == "webm" else "libx264"
        if codec not in av.codecs_available:
            pytest.skip(f"this PyAV's FFmpeg has no {codec} encoder")
        return "video", _write_video(root / f"template.{kind}", count, codec=codec)
    if kind == "still":
        cv2.imwrite(str(root / "face.png"), _scene(0))
        return "frames", root / "face.png"
    folder = root / "frames"
    folder.mkdir()
    for index in range(count):
        cv2.imwrite(str(folder / f"frame_{index}.{kind}"), _scene(index))
    return "frames", folder


@pytest.mark.parametrize("kind", ["mp4", "mkv", "mov", "webm", "png", "jpg", "still"])
def test_template_kinds_render_like_the_reference(tmp_path: Path, kind: str) -> None:
    frames = 1 if kind == "still" else 9
    outputs = 14  # more than the template: pingpong reuse goes through the cache too
    key, template = _template(tmp_path, kind, frames)
    with open_template(template) as source:
        assert source.count == frames
        if isinstance(source, VideoSource):
            # Demuxed count, whatever the header says (Matroska and WebM declare none).
            assert source.count == _decoded_count(template)
    job = _job(tmp_path, key, template, frames, outputs=outputs)
    _run(str(job))
    _run(str(job), "--reference", "-f", str(tmp_path / "reference"))
    rendered, reference = read_folder(tmp_path / "out"), read_folder(tmp_path / "reference")
    assert len(rendered) == len(reference) == outputs
    assert all(np.array_equal(a, b) for a, b in zip(rendered, reference, strict=True))


@pytest.mark.parametrize(
    ("kind", "rate"), [("mp4", Fraction(24000, 1001)), ("mkv", Fraction(60000, 1001)), ("png", Fraction(25))]
)
def test_output_takes_the_template_rate(tmp_path: Path, kind: str, rate: Fraction) -> None:
    count = 12
    if kind == "png":
        key, template = _template(tmp_path, "png", count)  # no rate of its own: the default 25
    else:
        key, template = "video", _write_video(tmp_path / f"template.{kind}", count, fps=rate)
    write_wav(tmp_path / "speech.wav")
    job = _job(tmp_path, key, template, count, output={"video": "result.mp4", "audio": "speech.wav"})
    _run(str(job))
    _assert_finished_mp4(tmp_path / "result.mp4", count, rate)


def test_declared_count_is_not_trusted(tmp_path: Path) -> None:
    path = _write_video(tmp_path / "template.mkv", 11, fmt="matroska")
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames in (0, 11)  # Matroska keeps no frame count
    with VideoSource(path) as source:
        assert source.count == 11 == len(list(source.frames()))


@pytest.mark.parametrize("fmt", ["matroska", "mp4"])
def test_variable_frame_rate_is_taken_in_order(tmp_path: Path, fmt: str, caplog: pytest.LogCaptureFixture) -> None:
    pts = [0, 40, 80, 100, 180, 200, 260, 300, 310, 400]  # milliseconds, irregular
    path = _write_video(tmp_path / "template.vid", len(pts), fmt=fmt, pts=pts, time_base=Fraction(1, 1000))
    with caplog.at_level(logging.WARNING, logger="composer"), VideoSource(path) as source:
        frames = list(source.frames())
    assert source.count == len(frames) == len(pts)
    scenes = [_scene(index).astype(int) for index in range(len(pts))]
    nearest = [int(np.argmin([np.abs(frame - scene).mean() for scene in scenes])) for frame in frames]
    assert nearest == list(range(len(pts)))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{path}: variable frame rate; frames are taken in order, {len(pts)} frames"]


@pytest.mark.parametrize("fps", [Fraction(30000, 1001), Fraction(24000, 1001), Fraction(25)])
def test_constant_rate_in_millisecond_containers_is_not_variable(
    tmp_path: Path, fps: Fraction, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write_video(tmp_path / "template.mkv", 30, fps=fps)  # timestamps 0, 33, 67, 100, ...
    with caplog.at_level(logging.WARNING, logger="composer"), VideoSource(path) as source:
        assert source.fps == fps
    assert not caplog.records
