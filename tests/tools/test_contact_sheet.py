"""The contact sheet: its size is predictable, null frames are drawn, bad inputs fail with one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import pytest

from composer.errors import JobError
from composer.tools.contact_sheet import contact_sheet, sample_indices
from tests.conftest import HEIGHT, WIDTH, boxes_for, write_frames


def _template(tmp_path: Path, count: int, nulls=(1,)) -> tuple[Path, Path]:
    frames = write_frames(tmp_path / "template", count)
    rects = tmp_path / "rects.json"
    rects.write_text(json.dumps(boxes_for(count, nulls)))
    return frames, rects


@pytest.mark.parametrize(
    ("count", "columns", "samples", "thumb_width"),
    [(9, 4, 24, 50), (30, 6, 24, 64), (3, 6, 24, 33), (12, 5, 7, 40), (5, 2, 1, 17)],
)
def test_size_is_as_predicted(tmp_path, count, columns, samples, thumb_width):
    frames, rects = _template(tmp_path, count)
    out = tmp_path / "sheet.png"
    size = contact_sheet(frames, rects, out, columns=columns, samples=samples, thumb_width=thumb_width)
    shown = min(count, samples)
    used = min(columns, shown)
    thumb_height = round(thumb_width * HEIGHT / WIDTH)
    expected = (used * thumb_width, math.ceil(shown / used) * thumb_height)
    assert size == expected
    image = cv2.imread(str(out))
    assert (image.shape[1], image.shape[0]) == expected
    assert not list(tmp_path.glob(".*.tmp"))


def test_null_frames_are_drawn_and_jpg_works(tmp_path):
    frames, rects = _template(tmp_path, 4, nulls=(0, 1, 2, 3))
    out = tmp_path / "sheets" / "all-null.jpg"
    assert contact_sheet(frames, rects, out, columns=2, thumb_width=64) == (128, 96)
    assert cv2.imread(str(out)) is not None


def test_sample_indices_spread_over_the_template():
    assert sample_indices(5, 24) == [0, 1, 2, 3, 4]
    assert sample_indices(100, 1) == [0]
    picks = sample_indices(100, 24)
    assert len(picks) == len(set(picks)) == 24
    assert picks[0] == 0 and picks[-1] == 99
    assert sample_indices(25, 24) == sorted(set(sample_indices(25, 24)))


def test_rects_that_do_not_cover_the_template_are_a_job_error(tmp_path):
    frames, rects = _template(tmp_path, 5)
    rects.write_text(json.dumps(boxes_for(3)))
    with pytest.raises(JobError, match="no rectangle for frame 3"):
        contact_sheet(frames, rects, tmp_path / "sheet.png")


def test_an_unknown_image_suffix_is_a_job_error(tmp_path):
    frames, rects = _template(tmp_path, 3)
    with pytest.raises(JobError, match=r"sheet\.gif"):
        contact_sheet(frames, rects, tmp_path / "sheet.gif")


@pytest.mark.parametrize(
    ("columns", "samples", "thumb_width"), [(1, 3, 100_000), (64, 64, 8192), (1, 200, 8192), (16, 200, 1024)]
)
def test_a_sheet_too_large_to_hold_is_refused_before_decoding(tmp_path, columns, samples, thumb_width):
    # OpenCV failed to allocate 22.5 GB for --width 100000, with a cv2.error traceback.
    frames, rects = _template(tmp_path, 200)
    words = r"a contact sheet of \d+ thumbnails .* pixels \(at most 65000 a side and 2\*\*26"
    with pytest.raises(JobError, match=words):
        contact_sheet(frames, rects, tmp_path / "sheet.png", columns=columns, samples=samples,
                      thumb_width=thumb_width)
    assert not (tmp_path / "sheet.png").exists()
