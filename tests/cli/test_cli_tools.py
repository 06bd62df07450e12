"""``composer rects`` and ``composer inspect`` through click's CliRunner: the exported objects, then ``main``."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.cli.tools import inspect_command, rects
from composer.inputs.rects import load_rects
from composer.model.zoo import build_elementwise
from tests.conftest import HEIGHT, WIDTH, boxes_for, write_frames


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _write_lms(path, left: float, right: float, top: float) -> None:
    points = np.full((110, 2), 5.0)
    points[1, 0], points[31, 0], points[52, 1] = left, right, top
    path.write_text("".join(f"{x} {y}\n" for x, y in points))


def _one_line_error(result, *named: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("composer: error: ")
    for text in named:
        assert text in lines[0]


@pytest.mark.parametrize(("group", "args", "words"), [
    (rects, ["from-landmarks"], ["DIR", "--output", "--frames", "--template", "--smooth", "--margin", "--square",
                                 "NOT clamped"]),
    (rects, ["show"], ["TEMPLATE", "RECTS", "--output", "--columns", "--samples", "--width"]),
    (inspect_command, [], ["MODEL.onnx", "--job", "Exit status"]),
])
def test_help(runner, group, args, words):
    result = runner.invoke(group, [*args, "--help"])
    assert result.exit_code == 0, result.output
    for word in words:
        assert word in result.output


def test_from_landmarks_with_a_template_and_square(runner, tmp_path):
    template = write_frames(tmp_path / "template", 6)
    lms = tmp_path / "lms"
    lms.mkdir()
    for t in (0, 1, 2, 4):  # frames 3 and 5 have no landmarks
        _write_lms(lms / f"{t}.lms", 10 + t, 30 + t, 8)
    _write_lms(lms / "9.lms", 0, 20, 0)  # beyond the template: not read
    out = tmp_path / "rects.json"
    result = runner.invoke(rects, ["from-landmarks", str(lms), "-o", str(out), "--template", str(template),
                                   "--square", "--margin", "0.5"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote 4 boxes and 2 null frames to {out}, clamped to {WIDTH}x{HEIGHT}"
    loaded = load_rects(out, 6)  # one entry per template frame
    assert loaded.get(3) is None and loaded.get(5) is None
    # 20 x 20 at (10, 8), grown by 10 on each side, then clamped into the 64 x 48 frame
    assert loaded.get(0) == (0, 0, 40, 38)
    loaded.check_bounds(WIDTH, HEIGHT, out)


def test_from_landmarks_without_a_template_is_not_clamped(runner, tmp_path):
    lms = tmp_path / "lms"
    lms.mkdir()
    _write_lms(lms / "frame_2.lms", -4, 16, 3)
    out = tmp_path / "rects.json"
    result = runner.invoke(rects, ["from-landmarks", str(lms), "-o", str(out), "--frames", "4"])
    assert result.exit_code == 0, result.output
    assert "wrote 1 boxes and 3 null frames" in result.output
    assert "not clamped" in result.output
    assert json.loads(out.read_text()) == [None, None, [-4, 3, 16, 23], None]


def test_from_landmarks_with_a_malformed_file_is_one_line(runner, tmp_path):
    lms = tmp_path / "lms"
    lms.mkdir()
    (lms / "0.lms").write_text("1 2\nthree 4\n")
    result = runner.invoke(rects, ["from-landmarks", str(lms), "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 2
    _one_line_error(result, "0.lms", "line 2")
    assert not (tmp_path / "r.json").exists()


def test_show_writes_a_png_of_the_predicted_size(runner, tmp_path):
    template = write_frames(tmp_path / "template", 10)
    rects_file = tmp_path / "rects.json"
    rects_file.write_text(json.dumps(boxes_for(10, nulls=(0,))))
    out = tmp_path / "sheet.png"
    result = runner.invoke(rects, ["show", str(template), str(rects_file), "-o", str(out), "--columns", "3",
                                   "--samples", "5", "--width", "80"])
    assert result.exit_code == 0, result.output
    expected = (3 * 80, 2 * round(80 * HEIGHT / WIDTH))
    assert result.output.strip() == f"wrote {out} ({expected[0]}x{expected[1]})"
    image = cv2.imread(str(out))
    assert (image.shape[1], image.shape[0]) == expected


def test_show_with_a_missing_template_is_one_line(runner, tmp_path):
    result = runner.invoke(rects, ["show", str(tmp_path / "nope"), str(tmp_path / "r.json"), "-o",
                                   str(tmp_path / "s.png")])
    assert result.exit_code == 2
    _one_line_error(result, "nope")


def test_inspect_without_a_job(runner, make_job):
    model = make_job().parent / "model.onnx"
    result = runner.invoke(inspect_command, [str(model)])
    assert result.exit_code == 0, result.output
    assert "inputs:" in result.output and "outputs:" in result.output
    assert "fits" not in result.output


def test_inspect_with_a_fitting_job_exits_0(runner, make_job):
    job = make_job()
    result = runner.invoke(inspect_command, [str(job.parent / "model.onnx"), "--job", str(job)])
    assert result.exit_code == 0, result.output
    assert "image input: image" in result.output
    assert result.output.strip().splitlines()[-1].startswith("fits: ")


def test_inspect_with_a_misfit_exits_1(runner, make_job, tmp_path):
    job = make_job()
    other = build_elementwise(tmp_path / "other.onnx", window=16, in_channels=6, feature_shape=(20,))
    result = runner.invoke(inspect_command, [str(other), "--job", str(job)])
    assert result.exit_code == 1, result.output
    misfits = [line for line in result.output.splitlines() if line.startswith("does not fit: ")]
    assert len(misfits) == 1
    assert "other.onnx" in misfits[0] and "crop - 2 * border = 20" in misfits[0]
    assert "Traceback" not in result.output


def test_inspect_with_a_bad_job_file_exits_2(runner, make_job, tmp_path):
    model = make_job().parent / "model.onnx"
    result = runner.invoke(inspect_command, [str(model), "--job", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2
    _one_line_error(result, "missing.toml")


# --- the same commands registered on composer's main command ------------------------------------------------


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
