"""The memory benchmark on a tiny job: inputs made once and reused, a render measured in a child process."""

from __future__ import annotations

import json
import sys

import numpy as np

from benchmarks.memory import Run, flatness, main, make_inputs, measure, rects_for, render_job, row, video_frames
from composer.inputs.sources import open_template

FRAMES, SIZE = 30, (320, 240)


def test_rects_lie_inside_the_frame_and_move():
    rects = rects_for(500, SIZE)
    assert len(rects) == 500
    assert all(0 <= x1 < x2 <= SIZE[0] and 0 <= y1 < y2 <= SIZE[1] for x1, y1, x2, y2 in rects)
    assert {x2 - x1 for x1, _, x2, _ in rects} == {120}  # min(200, height // 2)
    assert len({tuple(r) for r in rects}) > 100


def test_inputs_are_made_once_and_a_render_is_measured(tmp_path):
    folder = tmp_path / str(FRAMES)
    job = make_inputs(folder, FRAMES, SIZE, "200MB", render=FRAMES)
    with open_template(folder / "template.mp4") as source:
        assert source.count == FRAMES
        assert (source.width, source.height) == SIZE
    assert len(json.loads((folder / "rects.json").read_text())) == FRAMES
    assert np.load(folder / f"features-{FRAMES}.npy").shape == (FRAMES, 1024)
    made = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    assert make_inputs(folder, FRAMES, SIZE, "200MB", render=FRAMES) == job
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == made

    run = render_job(job)
    assert run.returncode == 0, run.stderr
    assert run.peak > 0 and run.seconds > 0
    assert video_frames(folder / "out" / "result.mp4") == FRAMES
    assert row(FRAMES, FRAMES, "200MB", run)[:3] == (str(FRAMES), str(FRAMES), "200MB")


def test_a_half_written_template_is_made_again(tmp_path):
    make_inputs(tmp_path, 4, SIZE, "1GB")
    (tmp_path / "inputs.json").unlink()  # as if the template's writing had been interrupted
    make_inputs(tmp_path, 6, SIZE, "1GB")
    with open_template(tmp_path / "template.mp4") as source:
        assert source.count == 6


def test_measure_sees_the_memory_a_child_touches():
    touch = "import numpy as np; a = np.ones(300 * 2**20, np.uint8); print(a.sum())"
    run = measure([sys.executable, "-c", touch])
    assert run.returncode == 0
    assert run.peak >= 300 * 2**20
    assert measure([sys.executable, "-c", "import sys; sys.exit(3)"]).returncode == 3


def test_flatness():
    assert flatness([1000 * 2**20, 1040 * 2**20]).startswith("flat")
    assert flatness([1000 * 2**20, 1300 * 2**20]).startswith("grows")


def test_a_row_is_over_beyond_the_budget_and_300_mb():
    budget = 10**9
    assert row(2000, 2000, "1GB", Run(0, 10.0, budget + 300 * 10**6, 0, 0, ""))[-1] == "ok"
    assert row(2000, 2000, "1GB", Run(0, 10.0, 0, budget + 300 * 10**6 + 1, 0, ""))[-1] == "OVER"


def test_main_prints_the_table_and_writes_the_report(tmp_path, capsys):
    report = tmp_path / "RESULTS.md"
    assert main(["--frames", "8,12", "--size", "320x240", "--budget", "1GB", "--out", str(tmp_path / "bench"),
                 "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "peak RSS MiB" in printed and "peak against length" in printed
    assert "## Memory: peak RSS against template length" in report.read_text()
