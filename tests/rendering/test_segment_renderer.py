"""The segment renderer: each lane renders whole segments; its frames and video match the other renderers'."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from composer.config import defaults
from composer.config.defaults import segment_mode
from composer.config.job import load_job
from composer.errors import StageError
from composer.inputs.schedule import template_index
from composer.output.resume import SEGMENT_FRAMES
from composer.rendering.observer import NullObserver
from composer.rendering.reference import render_reference
from composer.rendering.render import render
from composer.rendering.segment_renderer import segment_units
from tests.conftest import job_factory, read_folder

OUTPUTS = 2 * SEGMENT_FRAMES + 30  # three segments, the last one short


def test_units_end_on_segment_boundaries_wherever_the_run_starts():
    assert segment_units(0, 230) == [(0, 100), (100, 200), (200, 230)]
    assert segment_units(150, 230) == [(150, 200), (200, 230)]  # an images-only run resumed mid-segment
    assert segment_units(200, 200) == []
    assert segment_units(0, 40, segment=16) == [(0, 16), (16, 32), (32, 40)]


@pytest.fixture(scope="module")
def long_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """A 230-frame job on a 9-frame template with two frames without a rectangle, and its reference frames."""
    job_file = job_factory(tmp_path_factory.mktemp("segments"))(frames=9, outputs=OUTPUTS, nulls=(2, 8))
    render_reference(load_job(job_file))
    return job_file, read_folder(job_file.parent / "out")


def _assert_same(expected: list[np.ndarray], actual: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for i, (a, b) in enumerate(zip(expected, actual)):
        assert np.array_equal(a, b), f"frame {i} differs"


@pytest.mark.parametrize("lanes", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 3, 4])
def test_frames_match_the_reference(long_job, tmp_path, batch, lanes):
    job_file, expected = long_job
    job = load_job(job_file, {"output": {"frames": str(tmp_path / "out")},
                              "run": {"mode": "segments", "batch": batch, "lanes": lanes}})
    assert render(job).frames == OUTPUTS
    _assert_same(expected, read_folder(tmp_path / "out"))


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def _video(job_file: Path, video: Path, **run: object) -> list[np.ndarray]:
    render(load_job(job_file, {"output": {"frames": "", "video": str(video), "preset": "ultrafast"},
                               "run": run}))
    assert not list(video.parent.glob(".*.parts")), "the segments were not cleaned up"
    return _decode(video)


def test_video_bytes_are_the_same_with_any_lanes_and_the_pipeline(long_job, tmp_path):
    """The segments are the job's (not cut by the lanes) and each is encoded on one x264 thread, so the file is
    the same, byte for byte, whichever renderer and however many lanes wrote it."""
    job_file, _ = long_job
    files = {}
    for name, run in {"one": {"mode": "segments", "lanes": 1}, "two": {"mode": "segments", "lanes": 2},
                      "three": {"mode": "segments", "lanes": 3}, "pipeline": {"mode": "pipeline"}}.items():
        frames = _video(job_file, tmp_path / f"{name}.mp4", **run)
        assert len(frames) == OUTPUTS
        files[name] = (tmp_path / f"{name}.mp4").read_bytes()
    assert len(set(files.values())) == 1, [name for name in files if files[name] != files["one"]]


def _slow_lane(monkeypatch, fail_helping: bool = False) -> dict[int, set[str]]:
    """Make the lane that finishes a frame first take 10 ms more a frame, so that the other runs out of ranges
    and helps it. Returns, for each range (by its first frame), the lanes that rendered its frames, filled in
    as they go. ``fail_helping``: a lane that renders a frame of a range another lane began fails instead."""
    from composer.rendering import segment_renderer as segmented

    original, lock = segmented.SegmentRenderer._finish, threading.Lock()
    starts = [a for a, _ in segment_units(0, OUTPUTS)]
    lanes: dict[int, set[str]] = {}
    began: dict[int, str] = {}
    slow: list[str] = []

    def finish(self, i, *args, **kwargs):
        lane = threading.current_thread().name
        first = max(a for a in starts if a <= i)
        with lock:
            slow[:] = slow or [lane]
            lanes.setdefault(first, set()).add(lane)
            helping = began.setdefault(first, lane) != lane
        if fail_helping and helping:
            raise StageError("write", f"frame {i}", RuntimeError("a helping lane broke"))
        if lane == slow[0]:
            time.sleep(0.01)
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(segmented.SegmentRenderer, "_finish", finish)
    return lanes


def test_an_idle_lane_helps_and_the_frames_and_video_stay_the_same(long_job, tmp_path, monkeypatch):
    """A lane with no range left renders frames of another's; the images match the reference and the video
    decodes as one rendered without help does."""
    job_file, expected = long_job
    plain = _video(job_file, tmp_path / "plain.mp4", mode="segments", lanes=2)
    lanes = _slow_lane(monkeypatch)
    job = load_job(job_file, {"output": {"frames": str(tmp_path / "out"), "video": str(tmp_path / "helped.mp4"),
                                         "preset": "ultrafast"},
                              "run": {"mode": "segments", "lanes": 2, "batch": 3}})
    assert render(job).frames == OUTPUTS
    assert any(len(names) == 2 for names in lanes.values()), lanes
    _assert_same(expected, read_folder(tmp_path / "out"))
    _assert_same(plain, _decode(tmp_path / "helped.mp4"))


def test_a_lane_whose_template_frames_are_not_decoded_yet_helps_meanwhile(long_job, tmp_path, monkeypatch):
    """The second range starts at template frame 4: while frame 4 decodes (held back 0.5 s here), the lane that
    took it renders frames of the first range whose template frames are in (outputs 0-3), instead of waiting."""
    from composer.inputs.sources import FolderSource
    from composer.rendering import segment_renderer as segmented

    job_file, expected = long_job
    decode = FolderSource.frames

    def frames(self, start=0, stop=None):
        for t, frame in enumerate(decode(self, start, stop), start):
            if t == 4:
                time.sleep(0.5)
            yield frame

    finish, lanes, lock = segmented.SegmentRenderer._finish, {}, threading.Lock()

    def slow_finish(self, i, *args, **kwargs):
        with lock:
            lanes[i] = threading.current_thread().name
        time.sleep(0.02)  # both lanes: four frames outlast the helper's look every 5 ms
        return finish(self, i, *args, **kwargs)

    monkeypatch.setattr(FolderSource, "frames", frames)
    monkeypatch.setattr(segmented.SegmentRenderer, "_finish", slow_finish)
    job = load_job(job_file, {"output": {"frames": str(tmp_path / "out")},
                              "run": {"mode": "segments", "lanes": 2, "batch": 1}})
    assert template_index(100, 9, "pingpong") == 4  # the second range's first frame
    render(job)
    assert len({lanes[i] for i in range(4)}) == 2, lanes
    _assert_same(expected, read_folder(tmp_path / "out"))


@pytest.mark.parametrize("video", [False, True])
def test_a_helping_lane_that_fails_ends_the_run_promptly(long_job, tmp_path, monkeypatch, video):
    job_file, _ = long_job
    _slow_lane(monkeypatch, fail_helping=True)
    output = {"frames": str(tmp_path / "out"), "video": str(tmp_path / "v.mp4") if video else ""}
    job = load_job(job_file, {"output": output, "run": {"mode": "segments", "lanes": 2}})
    began = time.perf_counter()
    with pytest.raises(StageError, match="write failed at frame"):
        render(job)
    assert time.perf_counter() - began < 30  # a hang, not a speed: the render alone takes about 2 s
    assert not (tmp_path / "v.mp4").exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("composer-") and t.is_alive()]


def test_resume_after_a_failure_mid_run_is_identical(long_job, tmp_path, monkeypatch):
    """Lanes finish frames out of order; a run that failed resumes from the first missing frame."""
    job_file, expected = long_job
    job = load_job(job_file, {"output": {"frames": str(tmp_path / "out")}, "run": {"mode": "segments", "lanes": 2}})
    from composer.rendering import step

    original, calls = step.composite, {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 150:
            raise RuntimeError("composite broke")
        return original(*args, **kwargs)

    monkeypatch.setattr(step, "composite", failing)
    with pytest.raises(StageError, match="composite failed at frame"):
        render(job)
    written = len(list((tmp_path / "out").glob("*.png")))
    assert 0 < written < OUTPUTS
    monkeypatch.setattr(step, "composite", original)
    stats = render(job, resume=True)
    assert stats.frames < OUTPUTS  # only what was missing
    _assert_same(expected, read_folder(tmp_path / "out"))


def test_a_template_that_does_not_fit_the_cache_goes_to_the_pipeline(long_job, tmp_path, caplog):
    job_file, expected = long_job
    job = load_job(job_file, {"output": {"frames": str(tmp_path / "out")}, "run": {"mode": "segments", "chunk": 4}})
    with caplog.at_level(logging.INFO, logger="composer"):
        render(job)
    assert "rendering with the pipeline" in caplog.text
    assert any(r.levelno == logging.WARNING for r in caplog.records)  # the user asked for segments
    _assert_same(expected, read_folder(tmp_path / "out"))


def test_every_frame_is_reported_once(long_job, tmp_path):
    job_file, _ = long_job

    class Seen(NullObserver):
        def __init__(self) -> None:
            self.frames: list[int] = []
            self.total = -1

        def started(self, total: int) -> None:
            self.total = total

        def frame_done(self, index: int) -> None:
            self.frames.append(index)

    seen = Seen()
    render(load_job(job_file, {"output": {"frames": str(tmp_path / "out")}, "run": {"mode": "segments"}}), seen)
    assert seen.total == OUTPUTS and sorted(seen.frames) == list(range(OUTPUTS))


@pytest.mark.parametrize(("mode", "cores", "accelerated", "segments"), [
    ("auto", 2, False, True),
    ("auto", 1, False, False),
    ("auto", 4, True, False),
    ("segments", 1, True, True),
    ("pipeline", 4, False, False),
])
def test_auto_picks_segments_for_a_model_on_a_cpu_with_cores_to_share(monkeypatch, make_job, mode, cores,
                                                                      accelerated, segments):
    monkeypatch.setattr(defaults, "usable_cores", lambda: cores)
    assert segment_mode(load_job(make_job(), {"run": {"mode": mode}}), accelerated) is segments
