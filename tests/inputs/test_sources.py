from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from composer.errors import JobError, SourceError
from composer.inputs.sources import FolderSource, StillSource, VideoSource, open_template

W, H, N = 64, 48, 12


def _frame(index: int, width: int = W, height: int = H) -> np.ndarray:
    """A smooth frame whose brightness encodes ``index``, so frames survive lossy coding distinguishably."""
    ramp = np.linspace(0, 40, width, dtype=np.float32)[None, :, None]
    frame = np.broadcast_to(ramp + 15 * index, (height, width, 3)).astype(np.uint8)
    return np.ascontiguousarray(frame)


def _make_video(
    path: Path,
    count: int = N,
    width: int = W,
    height: int = H,
    fps: Fraction = Fraction(25),
    fmt: str = "mp4",
    rotation: int = 0,
) -> Path:
    """Encodes ``count`` frames with B-frames and a keyframe every 5 frames: seeks and reordering matter.

    ``rotation``: a display matrix asking players to turn the video by that many degrees counter-clockwise.
    """
    params = "keyint=5:min-keyint=5:scenecut=0:bframes=2:b-adapt=0"
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("libx264", fps, options={"crf": "10", "x264-params": params})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(count):
            i420 = cv2.cvtColor(_frame(index, width, height), cv2.COLOR_BGR2YUV_I420)
            frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return _make_video(tmp_path / "template.mp4")


def test_video_count_size_rate(video: Path) -> None:
    with open_template(video) as source:
        assert isinstance(source, VideoSource)
        assert (source.count, source.width, source.height, source.fps) == (N, W, H, Fraction(25))


def test_video_frames_match_what_was_written(video: Path) -> None:
    with VideoSource(video) as source:
        frames = list(source.frames())
    assert len(frames) == N
    for index, frame in enumerate(frames):
        assert frame.dtype == np.uint8 and frame.shape == (H, W, 3) and frame.flags.c_contiguous
        assert np.abs(frame.astype(int) - _frame(index)).mean() < 2


def test_video_ranges_equal_full_decode(video: Path) -> None:
    with VideoSource(video) as source:
        full = list(source.frames())
        part = list(source.frames(5, 9))
        assert len(part) == 4
        assert all(np.array_equal(a, b) for a, b in zip(part, full[5:9], strict=True))
        for start in range(N):
            first = next(source.frames(start, min(N, start + 1 + start % 3)))
            assert np.array_equal(first, full[start]), start


def test_video_frames_are_fresh_arrays(video: Path) -> None:
    with VideoSource(video) as source:
        first, second = list(source.frames(0, 2))
    assert first.flags.writeable and not np.shares_memory(first, second)


class _SeekCounter:
    """Stands in for the PyAV container, counting seeks."""

    def __init__(self, container: av.container.InputContainer) -> None:
        self._container = container
        self.seeks = 0

    def seek(self, *args: object, **kwargs: object) -> None:
        self.seeks += 1
        self._container.seek(*args, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self._container, name)


def test_video_seeks_at_most_once_per_call(video: Path) -> None:
    with VideoSource(video) as source:
        counter = _SeekCounter(source._container)
        source._container = counter
        for start, stop in [(0, N), (7, 12), (3, 10), (0, 4), (11, 12)]:
            before = counter.seeks
            assert len(list(source.frames(start, stop))) == stop - start
            assert counter.seeks - before <= 1
        assert counter.seeks > 0


def test_video_shorter_than_indexed(video: Path) -> None:
    with VideoSource(video) as source:
        # As if the container promised one frame more than the decoder delivers.
        source._pts.append(source._pts[-1] + 512)
        source.count += 1
        with pytest.raises(SourceError, match=rf"template.mp4: frame {N} could not be decoded"):
            list(source.frames(N - 2))


def test_video_with_odd_width_and_ntsc_rate(tmp_path: Path) -> None:
    path = _make_video(tmp_path / "odd.mp4", count=6, width=66, height=50, fps=Fraction(30000, 1001))
    with VideoSource(path) as source:
        assert source.fps == Fraction(30000, 1001)
        frames = list(source.frames(2, 6))
    assert all(f.shape == (50, 66, 3) and f.flags.c_contiguous for f in frames)


def test_raw_stream_without_timestamps(tmp_path: Path) -> None:
    path = _make_video(tmp_path / "template.h264", fmt="h264")
    with VideoSource(path) as source:
        assert source.count == N
        full = list(source.frames())
        assert all(np.array_equal(a, b) for a, b in zip(source.frames(5, 9), full[5:9], strict=True))


@pytest.mark.skipif(not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
                    reason="this PyAV cannot write a display matrix")
@pytest.mark.parametrize(("rotation", "angle", "turn"), [
    (90, 90, "90 degrees counter-clockwise"), (-90, -90, "90 degrees clockwise"), (270, -90, "90 degrees clockwise"),
    (180, 180, "180 degrees counter-clockwise"),
])
def test_a_video_with_rotation_metadata_is_taken_as_stored_with_a_warning(tmp_path, caplog, rotation, angle,
                                                                          turn) -> None:
    path = _make_video(tmp_path / "portrait.mp4", rotation=rotation)
    with caplog.at_level("WARNING", logger="composer"), VideoSource(path) as source:
        frames = list(source.frames())
    assert (source.width, source.height) == (W, H) and frames[0].shape == (H, W, 3)
    np.testing.assert_allclose(frames[3], _frame(3), atol=4)  # unturned
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith(f"{path}: the video asks players to turn it {turn}; ")
    assert source.rotation == angle


def test_a_video_without_rotation_metadata_gives_no_warning(video: Path, caplog) -> None:
    with caplog.at_level("WARNING", logger="composer"), VideoSource(video) as source:
        assert source.rotation == 0
    assert not caplog.records


def test_video_range_is_checked(video: Path) -> None:
    with VideoSource(video) as source, pytest.raises(ValueError, match="outside"):
        list(source.frames(3, N + 1))


def test_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "template.mp4"
    path.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SourceError, match="template.mp4"):
        open_template(path)


def test_file_without_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(16000)
        file.writeframes(np.zeros(1600, np.int16).tobytes())
    with pytest.raises(SourceError, match="speech.wav: has no video stream"):
        open_template(path)


def test_missing_template(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="template: no such file or folder"):
        open_template(tmp_path / "nope.mp4")


def _write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    for index, name in enumerate(names):
        cv2.imwrite(str(folder / name), _frame(index))


def test_folder_orders_by_integer(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    _write_images(folder, ["f2.png", "f10.png", "f1.jpg"])
    (folder / ".hidden5.png").write_bytes(b"ignored")
    (folder / "notes.txt").write_text("ignored")
    with open_template(folder) as source:
        assert isinstance(source, FolderSource)
        assert (source.count, source.width, source.height, source.fps) == (3, W, H, None)
        frames = list(source.frames())
        assert np.array_equal(list(source.frames(1, 2))[0], frames[1])
    # f1.jpg (written third, lossy) then f2.png (first) then f10.png (second).
    assert np.abs(frames[0].astype(int) - _frame(2)).mean() < 3
    assert np.array_equal(frames[1], _frame(0)) and np.array_equal(frames[2], _frame(1))


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="has no .png"):
        open_template(tmp_path)


def test_folder_name_without_integer(tmp_path: Path) -> None:
    _write_images(tmp_path, ["f1.png", "cover.png"])
    with pytest.raises(JobError, match="cover.png"):
        open_template(tmp_path)


def test_folder_duplicate_integers(tmp_path: Path) -> None:
    _write_images(tmp_path, ["f1.png", "f01.png"])
    with pytest.raises(JobError, match="frame number 1"):
        open_template(tmp_path)


def test_folder_frame_that_is_a_broken_symlink_is_named(tmp_path: Path) -> None:
    """Skipping it would shift the later frames by one and blame the rectangles for the count."""
    _write_images(tmp_path, ["f1.png", "f3.png"])
    (tmp_path / "f2.png").symlink_to(tmp_path / "gone" / "f2.png")
    (tmp_path / ".hidden9.png").symlink_to(tmp_path / "gone")  # hidden files stay ignored
    with pytest.raises(JobError) as info:
        open_template(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'f2.png'}: a template frame that is a broken symbolic link")
    assert "\n" not in message


def test_folder_size_mismatch(tmp_path: Path) -> None:
    _write_images(tmp_path, ["f1.png"])
    cv2.imwrite(str(tmp_path / "f2.png"), np.zeros((10, 10, 3), np.uint8))
    with open_template(tmp_path) as source, pytest.raises(SourceError, match="f2.png: is 10x10"):
        list(source.frames())


def test_folder_unreadable_image(tmp_path: Path) -> None:
    _write_images(tmp_path, ["f1.png"])
    (tmp_path / "f2.png").write_bytes(b"garbage")
    with open_template(tmp_path) as source, pytest.raises(SourceError, match="f2.png"):
        list(source.frames())


def test_still_image(tmp_path: Path) -> None:
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), _frame(3))
    with open_template(path) as source:
        assert isinstance(source, StillSource)
        assert (source.count, source.width, source.height, source.fps) == (1, W, H, None)
        first, again = next(source.frames()), next(source.frames(0, 1))
        assert list(source.frames(1)) == []
    assert np.array_equal(first, _frame(3)) and not np.shares_memory(first, again)


def test_a_template_faster_than_1000_fps_asks_for_output_fps(tmp_path: Path) -> None:
    from dataclasses import replace

    from composer.config.job import job_from_dict
    from composer.inputs.plan import open_plan

    with open_template(_make_video(tmp_path / "fast.mp4", fps=Fraction(2000))) as source:
        (tmp_path / "rects.json").write_text(str([None] * source.count).replace("None", "null"))
    raw = {"template": {"video": "fast.mp4", "rects": "rects.json"}, "model": {"path": "m.onnx", "crop": 8},
           "output": {"frames": "out"}}
    job = job_from_dict(raw, tmp_path / "job.toml")
    with pytest.raises(JobError, match=r"fast\.mp4: the template's frame rate 2000 is outside 1/3600 to 1000 fps"):
        with open_plan(job):
            pass
    with open_plan(replace(job, output=replace(job.output, fps=Fraction(25)))) as plan:
        assert plan.fps == 25
