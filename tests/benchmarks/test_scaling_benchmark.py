"""benchmarks.scaling: the stage loop alone and as one copy per core, on a tiny job (child processes)."""

from __future__ import annotations

import pytest

from benchmarks.scaling import Scaling, main
from composer.config.job import load_job
from composer.measure.stages import StageCost, mean_costs
from tests.conftest import broken_copy


def test_measures_two_copies_and_writes_the_section(demo_video_job, tmp_path, capsys):
    report = tmp_path / "report.md"
    assert main([str(demo_video_job), "--frames", "6", "--copies", "2", "--report", str(report)]) == 0
    text = report.read_text()
    assert "<!-- composer:scaling -->" in text and "## Scaling:" in text
    for stage in ("decode", "prepare", "infer", "composite", "write_image", "write_video", "all CPU stages"):
        assert f"| {stage} |" in text
    assert "2 copies at once" in text and "bound, every core busy: 2 cores" in text
    assert "every core busy, end to end: 2 copies x 6 frames / " in text and "of the end-to-end figure" in text
    out = capsys.readouterr().out
    assert "composer:" in out and "of the first bound" in out


def test_a_broken_template_fails_with_one_line(demo_video_job, tmp_path, capsys):
    broken = broken_copy(demo_video_job, tmp_path / "broken", "template.mp4", b"not a video")
    assert main([str(broken), "--frames", "4", "--copies", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("benchmarks.scaling: ") and "template.mp4" in err and "Traceback" not in err


def test_features_that_fail_before_the_start_release_the_other_copies(demo_video_job, tmp_path, capsys):
    # trial_job encodes the features with it before the barrier
    broken = broken_copy(demo_video_job, tmp_path / "features", "encoder.onnx")
    assert main([str(broken), "--frames", "4", "--copies", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "encoder.onnx" in err and "BrokenBarrier" not in err


def test_bounds_and_ratios_follow_the_costs(demo_video_job):
    alone = (StageCost("decode", 2.0, 2.0), StageCost("infer", 8.0, 8.0))
    copies = [(StageCost("decode", 2.0, 3.0), StageCost("infer", 8.0, 9.0)),
              (StageCost("decode", 2.0, 3.0), StageCost("infer", 8.0, 11.0))]
    busy = mean_costs(copies)
    assert [s.cpu_ms for s in busy] == [3.0, 10.0]
    result = Scaling(load_job(demo_video_job), 10, 2, alone, busy, composer_fps=120.0)
    assert result.bound.fps == pytest.approx(200.0)  # 2 cores x 1000 / 10 ms
    assert result.reachable.fps == pytest.approx(2000 / 13)
    assert result.rows()[-1] == ("all CPU stages", "10.00", "13.00", "1.30")
    assert "0.60 of the first bound" in result.summary()[2]
    assert result.end_to_end_fps is None and "end-to-end" not in result.summary()[2]  # the copies' wall not measured


def test_the_end_to_end_figure_is_the_frames_over_the_copies_mean_wall_time(demo_video_job):
    alone = (StageCost("decode", 2.0, 2.0), StageCost("infer", 8.0, 8.0))
    result = Scaling(load_job(demo_video_job), 100, 2, alone, alone, composer_fps=150.0, busy_seconds=(1.0, 1.5))
    assert result.end_to_end_fps == pytest.approx(160.0)  # 2 copies x 100 frames / 1.25 s
    lines = result.summary()
    assert ("end to end: 2 copies x 100 frames / 1.25 s (the copies' mean wall time; they took 1.00-1.50 s) = "
            "160.0 fps (0.80 of the first bound)") in lines[2]
    assert lines[3].endswith("0.94 of the end-to-end figure")


def test_the_stage_loop_times_its_work_end_to_end(demo_video_job, tmp_path):
    # The copies' wall time: decoding, the stages and closing the outputs, at least what the stages' clocks saw.
    from composer.measure.stages import measure_stages
    from composer.measure.trial import trial_job

    job = trial_job(load_job(demo_video_job), 8, tmp_path / "run")
    measured = measure_stages(job, tmp_path / "measure", 8)
    clocked = sum(s.wall_ms for s in measured.stages) * 8 / 1000
    assert clocked * 0.99 <= measured.seconds < clocked + 5
