"""`composer rects` and `composer inspect` through the command line."""

from __future__ import annotations

import json

import cv2
import numpy as np
from click.testing import CliRunner

from composer.cli import main
from composer.rects import load_rects
from composer.zoo import build_elementwise
from tests.conftest import HEIGHT, WIDTH, write_frames


def _lms(folder, index, left, right, top):
    folder.mkdir(parents=True, exist_ok=True)
    points = np.full((68, 2), 5.0)
    points[1, 0], points[31, 0], points[52, 1] = left, right, top
    (folder / f"{index}.lms").write_text("".join(f"{x} {y}\n" for x, y in points))


def test_from_landmarks_with_template_and_square(tmp_path):
    template = write_frames(tmp_path / "template", 4)
    lms = tmp_path / "lms"
    _lms(lms, 0, 10, 30, 12)
    _lms(lms, 1, 50, 80, 30)  # sticks out of the 64x48 frame on the right and at the bottom
    _lms(lms, 3, 12, 28, 10)  # frame 2 has no landmarks
    out = tmp_path / "rects.json"
    result = CliRunner().invoke(main, ["rects", "from-landmarks", str(lms), "-o", str(out),
                                       "--template", str(template), "--square"])
    assert result.exit_code == 0, result.output
    assert "3 boxes and 1 null frames" in result.output
    boxes = json.loads(out.read_text())
    assert len(boxes) == 4 and boxes[2] is None
    assert boxes[0] == [10, 12, 30, 32]
    x1, y1, x2, y2 = boxes[1]
    assert 0 <= x1 < x2 <= WIDTH and 0 <= y1 < y2 <= HEIGHT
    rects = load_rects(out, 4)  # composer reads what it wrote
    rects.check_bounds(WIDTH, HEIGHT, out)


def test_from_landmarks_bad_file_is_one_line(tmp_path):
    lms = tmp_path / "lms"
    lms.mkdir()
    (lms / "0.lms").write_text("1 2\nthree four\n")
    result = CliRunner().invoke(main, ["rects", "from-landmarks", str(lms), "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 2
    assert "0.lms" in result.stderr and result.stderr.count("\n") == 1


def test_show_writes_a_sheet_of_the_predicted_size(tmp_path):
    template = write_frames(tmp_path / "template", 7)
    boxes = [[2, 2, 30, 30]] * 3 + [None] + [[5, 5, 40, 40]] * 3
    (tmp_path / "rects.json").write_text(json.dumps(boxes))
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(main, ["rects", "show", str(template), str(tmp_path / "rects.json"),
                                       "-o", str(sheet), "--columns", "3", "--width", "128"])
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(sheet))
    thumb_height = round(128 * HEIGHT / WIDTH)
    assert image.shape == (3 * thumb_height, 3 * 128, 3)  # 7 frames in rows of 3


def test_inspect_fits_and_misfits(make_job, tmp_path):
    job_file = make_job()
    model = job_file.parent / "model.onnx"
    fits = CliRunner().invoke(main, ["inspect", str(model), "--job", str(job_file)])
    assert fits.exit_code == 0, fits.output
    assert "image" in fits.output and "audio" in fits.output
    other = build_elementwise(tmp_path / "small.onnx", window=12, in_channels=6, feature_shape=(20,))
    misfit = CliRunner().invoke(main, ["inspect", str(other), "--job", str(job_file)])
    assert misfit.exit_code == 1
    assert "does not fit" in misfit.output


def test_inspect_without_a_job_lists_inputs(tmp_path):
    model = build_elementwise(tmp_path / "m.onnx", window=16, in_channels=3)
    result = CliRunner().invoke(main, ["inspect", str(model)])
    assert result.exit_code == 0
    assert "image" in result.output and "output" in result.output
