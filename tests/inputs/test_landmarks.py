"""Rectangles from .lms landmark files: the box formula, gaps, smoothing, margin, square, clamping, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from composer.errors import JobError
from composer.inputs.landmarks import MIN_POINTS, _squared, boxes_from_landmarks, read_landmarks, write_rects
from composer.inputs.rects import load_rects


def _points(left: float, right: float, top: float, count: int = 110) -> np.ndarray:
    """Landmarks with point 1 at x=left, point 31 at x=right, point 52 at y=top; the others elsewhere."""
    points = np.full((count, 2), 500.0)
    points[1, 0], points[31, 0], points[52, 1] = left, right, top
    return points


def _write_lms(folder: Path, name: str, points: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(f"{x} {y}\n" for x, y in points))
    return path


def _boxes(points, **kwargs):
    kwargs.setdefault("width", None)
    kwargs.setdefault("height", None)
    return boxes_from_landmarks(points, **kwargs)


def test_box_formula(tmp_path):
    _write_lms(tmp_path, "0.lms", _points(10, 50, 20))
    _write_lms(tmp_path, "1.lms", _points(10.4, 50.4, 20.2))
    points = read_landmarks(tmp_path)
    assert len(points) == 2
    assert points[0].shape == (110, 2)
    # x1 = p1.x, x2 = p31.x, y1 = p52.y, y2 = y1 + x2 - x1
    assert _boxes(points) == [(10, 20, 50, 60), (10, 20, 50, 60)]


def test_frames_are_ordered_by_the_number_in_the_name(tmp_path):
    for t in (10, 2, 0, 1):
        _write_lms(tmp_path, f"frame_{t}.lms", _points(t, t + 20, 5))
    (tmp_path / "notes.txt").write_text("ignored")
    points = read_landmarks(tmp_path)
    assert len(points) == 11
    boxes = _boxes(points)
    assert [t for t, box in enumerate(boxes) if box is not None] == [0, 1, 2, 10]
    assert boxes[10] == (10, 5, 30, 25)


def test_a_missing_file_is_null(tmp_path):
    _write_lms(tmp_path, "0.lms", _points(10, 50, 20))
    _write_lms(tmp_path, "2.lms", _points(10, 50, 20))
    points = read_landmarks(tmp_path, frames=4)
    assert [p is None for p in points] == [False, True, False, True]
    assert _boxes(points) == [(10, 20, 50, 60), None, (10, 20, 50, 60), None]


def test_frames_cuts_the_list(tmp_path):
    for t in range(5):
        _write_lms(tmp_path, f"{t}.lms", _points(10, 50, 20))
    assert len(read_landmarks(tmp_path, frames=3)) == 3


def test_a_box_sticking_out_is_clamped(tmp_path):
    points = [_points(-5, 30, 40), _points(50, 70, 10), _points(100, 120, 10)]
    assert _boxes(points, width=64, height=48) == [(0, 40, 30, 48), (50, 10, 64, 30), None]
    # without a size nothing is clamped
    assert _boxes(points)[0] == (-5, 40, 30, 75)


def test_smoothing_is_a_centred_mean_over_frames_with_boxes():
    lefts = [0, 3, 6, 30, None, 12]
    points = [None if x is None else _points(x, x + 10, 0) for x in lefts]
    boxes = _boxes(points, smooth=3)
    # centred over 3 frames, cut at the ends, the null frame left out of its neighbours' means
    expected_left = [1.5, 3, 13, 18, None, 12]
    for box, left in zip(boxes, expected_left):
        if left is None:
            assert box is None
        else:
            assert box == (round(left), 0, round(left) + 10, 10)


def test_smoothing_of_one_changes_nothing():
    points = [_points(x, x + 10, 2 * x) for x in (0, 7, 3)]
    assert _boxes(points, smooth=1) == _boxes(points)


def test_margin_grows_every_side():
    boxes = _boxes([_points(100, 200, 50)], margin=0.1)
    assert boxes == [(90, 40, 210, 160)]


def test_square_keeps_the_landmark_box_and_its_margin():
    # the landmark box is square by construction (y2 - y1 = x2 - x1), so square leaves it as it is
    assert _boxes([_points(10, 50, 20)], square=True) == [(10, 20, 50, 60)]
    assert _boxes([_points(10, 50, 20)], margin=0.1, square=True) == [(6, 16, 54, 64)]


def test_square_uses_the_larger_side_around_the_centre():
    assert _squared(np.array([[0.0, 0.0, 20.0, 10.0]])).tolist() == [[0.0, -5.0, 20.0, 15.0]]
    assert _squared(np.array([[0.0, 0.0, 10.0, 30.0]])).tolist() == [[-10.0, 0.0, 20.0, 30.0]]


def test_clamping_comes_after_square():
    boxes = _boxes([_points(0, 40, 30)], width=64, height=48, square=True)
    assert boxes == [(0, 30, 40, 48)]


def test_a_file_with_a_utf8_byte_order_mark_reads(tmp_path):
    points = _points(10, 50, 20)
    (tmp_path / "0.lms").write_text("".join(f"{x} {y}\n" for x, y in points), encoding="utf-8-sig")
    np.testing.assert_array_equal(read_landmarks(tmp_path)[0], points)


def test_a_non_numeric_line_names_the_file_and_line(tmp_path):
    points = _points(10, 50, 20)
    path = _write_lms(tmp_path, "0.lms", points)
    lines = path.read_text().splitlines()
    lines[6] = "12.5 abc"
    path.write_text("\n".join(lines))
    with pytest.raises(JobError, match=r"0\.lms: line 7: expected two numbers"):
        read_landmarks(tmp_path)


def test_too_few_points_names_the_file(tmp_path):
    _write_lms(tmp_path, "3.lms", _points(10, 50, 20)[: MIN_POINTS - 1])
    with pytest.raises(JobError, match=r"3\.lms: line \d+: the file ends after 52 points"):
        read_landmarks(tmp_path)


def test_a_folder_without_landmarks_is_an_error(tmp_path):
    with pytest.raises(JobError, match="no .lms files"):
        read_landmarks(tmp_path)
    with pytest.raises(JobError, match="no such landmarks folder"):
        read_landmarks(tmp_path / "missing")


def test_two_files_with_one_number_is_an_error(tmp_path):
    _write_lms(tmp_path, "1.lms", _points(10, 50, 20))
    _write_lms(tmp_path, "frame_01.lms", _points(10, 50, 20))
    with pytest.raises(JobError, match="frame number 1 is also used"):
        read_landmarks(tmp_path)


@pytest.mark.parametrize(("kwargs", "match"), [({"smooth": 0}, "smooth"), ({"margin": -0.5}, "margin")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _boxes([_points(10, 50, 20)], **kwargs)


def test_write_rects_round_trips(tmp_path):
    boxes = [(1, 2, 11, 12), None, (0, 0, 64, 48)]
    path = tmp_path / "sub" / "rects.json"
    write_rects(path, boxes)
    assert json.loads(path.read_text()) == [[1, 2, 11, 12], None, [0, 0, 64, 48]]
    rects = load_rects(path, 3)
    assert [rects.get(t) for t in range(3)] == boxes
    assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.timeout(20)
def test_a_time_stamp_in_a_name_is_refused_without_a_frame_count(tmp_path):
    # The frames up to 20240101123000 were a list of twenty trillion entries: the command hung.
    _write_lms(tmp_path, "0.lms", _points(10, 50, 20))
    _write_lms(tmp_path, "take_20240101123000.lms", _points(10, 50, 20))
    with pytest.raises(JobError, match=r"take_20240101123000\.lms: frame number 20240101123000 is beyond"):
        read_landmarks(tmp_path)
    assert len(read_landmarks(tmp_path, frames=3)) == 3  # with the template's length it is left out
