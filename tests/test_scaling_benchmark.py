"""benchmarks.scaling: the stage loop alone and as one copy per core, on a tiny job (child processes)."""

from __future__ import annotations

import pytest

from benchmarks.scaling import Scaling, main, mean_costs
from composer.demo_assets import make_demo_assets
from composer.job import load_job
from composer.profile import StageCost
from composer.zoo import build_elementwise


@pytest.fixture(scope="module")
def job_file(tmp_path_factory):
    """The demo job at 64x64 (a 5-frame template over 8 frames) with a cheap model."""
    root = tmp_path_factory.mktemp("scaling-job")
    job = make_demo_assets(root, frames=8, size=(64, 64), template_frames=5)
    build_elementwise(root / "model.onnx", window=320, in_channels=6, feature_shape=(32, 16, 16))
    return job


def test_measures_two_copies_and_writes_the_section(job_file, tmp_path, capsys):
    report = tmp_path / "report.md"
    assert main([str(job_file), "--frames", "6", "--copies", "2", "--report", str(report)]) == 0
    text = report.read_text()
    assert "<!-- composer:scaling -->" in text and "## Scaling:" in text
    for stage in ("decode", "prepare", "infer", "composite", "write_image", "write_video", "all CPU stages"):
        assert f"| {stage} |" in text
    assert "2 copies at once" in text and "bound, every core busy: 2 cores" in text
    out = capsys.readouterr().out
    assert "composer:" in out and "of the first bound" in out


def test_a_broken_template_fails_with_one_line(job_file, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in job_file.parent.iterdir():
        if path.is_file():
            (broken / path.name).write_bytes(path.read_bytes())
    (broken / "template.mp4").write_bytes(b"not a video")
    assert main([str(broken / "job.toml"), "--frames", "4", "--copies", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("benchmarks.scaling: ") and "template.mp4" in err and "Traceback" not in err


def test_features_that_fail_before_the_start_release_the_other_copies(job_file, tmp_path, capsys):
    broken = tmp_path / "features"
    broken.mkdir()
    for path in job_file.parent.iterdir():
        if path.is_file():
            (broken / path.name).write_bytes(path.read_bytes())
    (broken / "features.npy").write_bytes(b"garbage")  # trial_job reads it before the barrier
    assert main([str(broken / "job.toml"), "--frames", "4", "--copies", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "features.npy" in err and "BrokenBarrier" not in err


def test_bounds_and_ratios_follow_the_costs(job_file):
    alone = (StageCost("decode", 2.0, 2.0), StageCost("infer", 8.0, 8.0))
    copies = [(StageCost("decode", 2.0, 3.0), StageCost("infer", 8.0, 9.0)),
              (StageCost("decode", 2.0, 3.0), StageCost("infer", 8.0, 11.0))]
    busy = mean_costs(copies)
    assert [s.cpu_ms for s in busy] == [3.0, 10.0]
    result = Scaling(load_job(job_file), 10, 2, alone, busy, composer_fps=120.0)
    assert result.bound.fps == pytest.approx(200.0)  # 2 cores x 1000 / 10 ms
    assert result.reachable.fps == pytest.approx(2000 / 13)
    assert result.rows()[-1] == ("all CPU stages", "10.00", "13.00", "1.30")
    assert "0.60 of the first bound" in result.summary()[2]
