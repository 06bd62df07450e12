"""Rectangle files: every accepted format, every way one can be wrong (docs/design.md sections 1 and 3.2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from composer.errors import JobError
from composer.inputs.rects import load_rects

BOXES = [[1, 2, 11, 12], None, [0, 0, 64, 48], [5, 6, 7, 9]]
CSV_HEADER = "frame,x1,y1,x2,y2\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _as_dicts(boxes):
    return [None if b is None else dict(zip(("x1", "y1", "x2", "y2"), b, strict=True)) for b in boxes]


def _as_csv(boxes) -> str:
    rows = [f"{t}," + ("" if b is None else ",".join(map(str, b))) for t, b in enumerate(boxes)]
    # a null frame is a row with empty cells: "1,,,,"
    rows = [r if not r.endswith(",") else r + ",,," for r in rows]
    return CSV_HEADER + "\n".join(rows) + "\n"


FORMATS = {
    "json list of lists": ("r.json", json.dumps(BOXES)),
    "json list of dicts": ("r.json", json.dumps(_as_dicts(BOXES))),
    "json object of lists": ("r.json", json.dumps({str(t): b for t, b in enumerate(BOXES)})),
    "json object of dicts, shuffled": (
        "r.json",
        json.dumps({str(t): _as_dicts(BOXES)[t] for t in (2, 0, 3, 1)}),
    ),
    "json list mixing lists and dicts": (
        "r.json",
        json.dumps([BOXES[0], None, _as_dicts(BOXES)[2], BOXES[3]]),
    ),
    "csv": ("r.csv", _as_csv(BOXES)),
    "csv with literal null": (
        "r.csv",
        CSV_HEADER + "0,1,2,11,12\n1,null,null,null,null\n2,0,0,64,48\n3,5,6,7,9\n",
    ),
    "csv unordered, upper-case suffix": (
        "r.CSV",
        CSV_HEADER + "3,5,6,7,9\n1,,,,\n0,1,2,11,12\n2,0,0,64,48\n",
    ),
}


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_loads_the_same_rectangles(tmp_path, name):
    filename, text = FORMATS[name]
    rects = load_rects(_write(tmp_path / filename, text), len(BOXES))
    assert len(rects) == 4
    assert [rects.get(t) for t in range(4)] == [None if b is None else tuple(b) for b in BOXES]
    assert rects.valid.tolist() == [True, False, True, True]
    assert rects.boxes.dtype == np.int32 and rects.boxes.shape == (4, 4)
    assert all(type(v) is int for v in rects.get(0))


@pytest.mark.parametrize("name", ["json list of lists", "json object of dicts, shuffled", "csv"])
def test_a_file_with_a_utf8_byte_order_mark_loads(tmp_path, name):
    """Spreadsheet programs save CSV as "UTF-8 with BOM"; some editors do the same to JSON."""
    filename, text = FORMATS[name]
    path = tmp_path / filename
    path.write_text(text, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    rects = load_rects(path, len(BOXES))
    assert [rects.get(t) for t in range(4)] == [None if b is None else tuple(b) for b in BOXES]


def test_whole_floats_are_accepted(tmp_path):
    rects = load_rects(_write(tmp_path / "r.json", "[[1.0, 2.0, 3.0, 4.0]]"), 1)
    assert rects.get(0) == (1, 2, 3, 4)


def test_all_null(tmp_path):
    rects = load_rects(_write(tmp_path / "r.json", "[null, null]"), 2)
    assert rects.get(0) is None and rects.get(1) is None
    rects.check_bounds(8, 8, tmp_path / "r.json")  # null frames have no bounds to break


@pytest.mark.parametrize(
    ("filename", "text", "frame"),
    [
        ("r.json", json.dumps(BOXES[:3]), 3),
        ("r.json", json.dumps([]), 0),
        ("r.json", json.dumps({"0": BOXES[0], "1": None, "3": BOXES[3]}), 2),
        ("r.json", json.dumps({"1": None, "2": BOXES[2], "3": BOXES[3]}), 0),
        ("r.csv", CSV_HEADER + "0,1,2,11,12\n2,0,0,64,48\n3,5,6,7,9\n", 1),
        ("r.csv", CSV_HEADER + "0,1,2,11,12\n1,,,,\n2,0,0,64,48\n", 3),
        ("r.csv", CSV_HEADER, 0),
    ],
)
def test_a_missing_frame_is_named(tmp_path, filename, text, frame):
    with pytest.raises(JobError, match=rf"no rectangle for frame {frame}\b"):
        load_rects(_write(tmp_path / filename, text), 4)


def test_an_entry_beyond_the_template_is_an_error(tmp_path):
    with pytest.raises(JobError, match="frame 4"):
        load_rects(_write(tmp_path / "r.json", json.dumps([*BOXES, [0, 0, 1, 1]])), 4)


def test_missing_file(tmp_path):
    with pytest.raises(JobError, match="nothere.json"):
        load_rects(tmp_path / "nothere.json", 1)


@pytest.mark.parametrize("text", ["[[1, 2, 3, 4]", "{", "not json", "", "[[1, 2, 3, 4],]"])
def test_malformed_json(tmp_path, text):
    with pytest.raises(JobError, match="not valid JSON"):
        load_rects(_write(tmp_path / "r.json", text), 1)


@pytest.mark.parametrize("text", ['"rects"', "3", "true"])
def test_json_that_is_neither_list_nor_object(tmp_path, text):
    with pytest.raises(JobError, match="list or object"):
        load_rects(_write(tmp_path / "r.json", text), 1)


def test_json_object_key_that_is_not_an_index(tmp_path):
    with pytest.raises(JobError, match="'first'"):
        load_rects(_write(tmp_path / "r.json", json.dumps({"first": [0, 0, 1, 1]})), 1)


@pytest.mark.parametrize(
    "header",
    ["frame,x,y,w,h", "x1,y1,x2,y2", "frame,x1,y1,x2", "frame,y1,x1,x2,y2", "frame,x1,y1,x2,y2,extra", ""],
)
def test_wrong_csv_header(tmp_path, header):
    with pytest.raises(JobError, match="header"):
        load_rects(_write(tmp_path / "r.csv", header + "\n0,1,2,3,4\n"), 1)


def test_csv_header_with_spaces_is_accepted(tmp_path):
    rects = load_rects(_write(tmp_path / "r.csv", "frame, x1, y1, x2, y2\n0, 1, 2, 3, 4\n"), 1)
    assert rects.get(0) == (1, 2, 3, 4)


@pytest.mark.parametrize(
    "entry",
    [
        [1.5, 2, 3, 4],
        [1, 2, 3, "4"],
        [1, 2, True, 4],
        [1, 2, 3],
        [1, 2, 3, 4, 5],
        {"x1": 1, "y1": 2, "x2": 3},
        {"x1": 1, "y1": 2, "x2": 3, "y2": 4, "z": 0},
        {"left": 1, "top": 2, "right": 3, "bottom": 4},
        "1,2,3,4",
        7,
    ],
)
def test_bad_json_entry_names_the_frame(tmp_path, entry):
    with pytest.raises(JobError, match=r"frame 1\b"):
        load_rects(_write(tmp_path / "r.json", json.dumps([[0, 0, 1, 1], entry])), 2)


@pytest.mark.parametrize("row", ["1,1.5,2,3,4", "1,a,2,3,4", "1,1,2,3,", "x,1,2,3,4", "1,1,2,3"])
def test_non_integer_csv_values(tmp_path, row):
    with pytest.raises(JobError, match="r.csv"):
        load_rects(_write(tmp_path / "r.csv", CSV_HEADER + "0,0,0,1,1\n" + row + "\n"), 2)


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("r.json", "[[Infinity, 0, 1, 1]]"),
        ("r.json", "[[0, NaN, 1, 1]]"),
        ("r.csv", CSV_HEADER + "0,inf,0,1,1\n"),
        ("r.csv", CSV_HEADER + "0,0,nan,1,1\n"),
    ],
)
def test_non_finite_coordinates_are_job_errors(tmp_path, filename, text):
    with pytest.raises(JobError, match="frame 0"):
        load_rects(_write(tmp_path / filename, text), 1)


def test_huge_coordinates_are_job_errors(tmp_path):
    with pytest.raises(JobError, match="frame 0"):
        load_rects(_write(tmp_path / "r.json", "[[0, 0, 3000000000, 1]]"), 1)


# --- check_bounds -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "why"),
    [
        ([10, 5, 65, 20], "x2 > W"),
        ([10, 5, 20, 49], "y2 > H"),
        ([10, 5, 10, 20], "empty: x1 == x2"),
        ([10, 5, 20, 5], "empty: y1 == y2"),
        ([20, 5, 10, 20], "x1 > x2"),
        ([-1, 5, 10, 20], "negative x1"),
        ([10, -3, 20, 20], "negative y1"),
        ([64, 5, 65, 20], "x1 == W"),
    ],
)
def test_check_bounds_names_the_frame(tmp_path, box, why):
    path = _write(tmp_path / "r.json", json.dumps([[0, 0, 64, 48], None, box]))
    rects = load_rects(path, 3)
    with pytest.raises(JobError) as info:
        rects.check_bounds(64, 48, path)
    message = str(info.value)
    assert "frame 2" in message and "r.json" in message and "64x48" in message, why


def test_check_bounds_names_the_first_bad_frame(tmp_path):
    path = _write(tmp_path / "r.json", json.dumps([[0, 0, 8, 8], [0, 0, 9, 8], [0, 0, 0, 8]]))
    with pytest.raises(JobError, match=r"frame 1\b"):
        load_rects(path, 3).check_bounds(8, 8, path)


def test_check_bounds_accepts_the_full_frame_and_one_pixel(tmp_path):
    path = _write(tmp_path / "r.json", json.dumps([[0, 0, 64, 48], [63, 47, 64, 48], None]))
    load_rects(path, 3).check_bounds(64, 48, path)


def test_check_bounds_message_shows_plain_numbers(tmp_path):
    path = _write(tmp_path / "r.json", json.dumps([[0, 0, 70, 10]]))
    with pytest.raises(JobError) as info:
        load_rects(path, 1).check_bounds(64, 48, path)
    assert "[0, 0, 70, 10]" in str(info.value)


@pytest.mark.timeout(20)
def test_deeply_nested_json_is_one_line_before_json_recurses(tmp_path):
    # json.loads raised RecursionError (a traceback) at about 1000 levels
    path = _write(tmp_path / "rects.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(JobError, match="JSON nested more than 32 levels deep"):
        load_rects(path, 1)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[[0, 0, " + "9" * 5000 + ", 4]]", "4300 digits"),  # json's ValueError escaped as a traceback
        ('{"' + "9" * 5000 + '": [0, 0, 4, 4]}', "is not a frame index"),
        ("[[0, 0, 1e400, 4]]", "whole numbers"),
        ("[[0, 0, NaN, 4]]", "whole numbers"),
        ("[[0, 0, true, 4]]", "whole numbers"),
    ],
)
def test_huge_and_odd_numbers_are_one_line(tmp_path, text, words):
    with pytest.raises(JobError, match=words) as info:
        load_rects(_write(tmp_path / "rects.json", text), 1)
    assert len(str(info.value)) < 300
