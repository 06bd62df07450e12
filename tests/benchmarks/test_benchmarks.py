"""The benchmark designs: each renders exactly the reference loop's frames (png, tiny jobs)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.designs import DESIGNS, label, load_inputs, pooled_drawers
from benchmarks.run import Checker, benchmark_job, check, table, text_table, time_designs
from composer.config.job import load_job
from composer.measure.children import ChildFailed, rotated
from composer.rendering.layout import default_layout
from composer.rendering.reference import render_reference
from tests.conftest import broken_copy


def _png_saver(folder: Path):
    folder.mkdir(parents=True)

    def save(index: int, frame: np.ndarray) -> None:
        assert cv2.imwrite(str(folder / f"{index:06d}.png"), frame)

    return save


def _read(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))]


@pytest.fixture
def folder_job(make_job):
    """A folder template with a pass-through frame, 7 frames ping-pong over 23."""
    return make_job()


@pytest.mark.parametrize("name", list(DESIGNS))
@pytest.mark.parametrize("template", ["folder_job", "demo_video_job"])
def test_design_renders_the_reference_frames(name, template, request, tmp_path):
    job_file = request.getfixturevalue(template)
    overrides = {"output": {"format": "png", "video": "", "frames": str(tmp_path / "expected")}}
    job = load_job(job_file, overrides)
    render_reference(job)
    expected = _read(tmp_path / "expected")
    inputs = load_inputs(job)
    DESIGNS[name](inputs, _png_saver(tmp_path / name))
    actual = _read(tmp_path / name)
    assert len(actual) == len(expected) == inputs.count
    for i, (a, b) in enumerate(zip(expected, actual)):
        assert np.array_equal(a, b), f"{name}: frame {i} differs from the reference"


def test_runner_check_finds_every_design_identical(folder_job):
    inputs = load_inputs(load_job(folder_job, {"output": {"video": ""}}))
    verdicts = check(inputs, list(DESIGNS))
    assert "reference" not in verdicts
    assert all(v.ok and v.text() == "identical" for v in verdicts.values()), verdicts


def test_checker_reports_differences_and_missing_frames():
    expected = {0: np.zeros((4, 4, 3), np.uint8), 1: np.zeros((4, 4, 3), np.uint8), 2: np.zeros((4, 4, 3), np.uint8)}
    checker = Checker(expected)
    checker(0, expected[0].copy())
    one_off = expected[1].copy()
    one_off[0, 0, 0] = 1
    checker(1, one_off)
    verdict = checker.verdict()
    assert verdict.missing == 1 and not verdict.ok and "missing" in verdict.text()
    far = expected[2].copy()
    far[1, 1, 1] = 9
    checker(2, far)
    verdict = checker.verdict()
    assert verdict.differing == 2 and verdict.max_diff == 9 and "DIFFERENT" in verdict.text()


def test_labels_and_table(folder_job, monkeypatch):
    from benchmarks.run import Timing

    monkeypatch.setattr("composer.config.defaults.usable_cores", lambda: 2)  # a CPU with cores to share: segments
    job = load_job(folder_job)
    segments = default_layout(job.with_run(lanes=2))
    assert label("composer", segments) == (
        "composer (segments: 2 lanes x 1 thread, batch 1, each lane rendering whole segments)")
    pipeline = default_layout(job.with_run(mode="pipeline", batch=4, workers=3))
    assert label("composer", pipeline).startswith("composer (pipeline: model ")
    assert label("composer", pipeline).endswith("batch 4; 3 composite workers)")
    assert f"{pooled_drawers()} drawer" in label("seed000-pooled")
    timings = {"composer": Timing("composer", (1.0, 1.6, 2.0), 2**20, 10),
               "reference": Timing("reference", (4.0,), 0, 10)}
    rows = table(timings, {}, segments)
    assert rows[0][3] == "1.00" and rows[1][3] == "0.40" and rows[1][4] == "2.50x"
    assert rows[0][0] == label("composer", segments)
    assert "fps / composer's" in text_table(rows)


def test_each_round_starts_with_the_next_design():
    names = ["composer", "a", "b"]
    orders = [rotated(names, r) for r in range(4)]
    assert orders == [["composer", "a", "b"], ["a", "b", "composer"], ["b", "composer", "a"],
                      ["composer", "a", "b"]]
    assert rotated([], 3) == []


def test_each_timed_run_is_a_fresh_process(demo_video_job, tmp_path):
    job = benchmark_job(demo_video_job)
    timings = time_designs(demo_video_job, ["composer", "reference"], 11, tmp_path / "frames", repeats=2,
                           progress=False)
    for name in ("composer", "reference"):
        assert len(timings[name].seconds) == 2 and min(timings[name].seconds) > 0
        assert timings[name].peak_rss > 0
        assert len(list((tmp_path / "frames" / name).glob("*.jpg"))) == 11
    assert job.output.format == "jpg" and job.output.video is None


def test_a_run_that_fails_in_its_process_is_one_line(demo_video_job, tmp_path):
    broken = broken_copy(demo_video_job, tmp_path / "broken", "template.mp4", b"not a video")
    with pytest.raises(ChildFailed, match="template.mp4"):
        time_designs(broken, ["composer"], 11, tmp_path / "frames", repeats=1, progress=False)
