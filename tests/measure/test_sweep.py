"""composer sweep: the grid, its report section and the machine it names."""

from __future__ import annotations

import importlib.util
import json
import statistics

from click.testing import CliRunner

from composer.cli.measure import sweep
from composer.config.job import load_job
from composer.measure.machine import describe_machine
from composer.measure.sweep import Trial, run_sweep
from tests.conftest import broken_copy


def test_two_by_two_grid_writes_a_report_section(make_job, tmp_path):
    job_file = make_job()
    report = tmp_path / "RESULTS.md"
    args = [str(job_file), "--batch", "1,2", "--workers", "1,2", "--repeats", "1", "--confirm", "0", "-n", "8",
            "-q", "--report", str(report)]
    result = CliRunner().invoke(sweep, args)
    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert text.count("<!-- composer:sweep -->") == 1
    table = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(table) == 6  # the pipeline's 2 x 2, and the segment renderer's 2 batch sizes
    assert {tuple(line.split(" | ")[:2]) for line in table} == {("| 1", "1"), ("| 1", "2"), ("| 2", "1"),
                                                                  ("| 2", "2"), ("| 1", "segments"),
                                                                  ("| 2", "segments")}
    assert sum(" * |" in line for line in table) == 1  # the best point is marked once
    assert "**Best:**" in text and "| CPU |" in text and "| packages |" in text
    # The heat map needs the optional matplotlib: drawn and linked exactly when it is installed.
    drawn = importlib.util.find_spec("matplotlib") is not None
    assert (tmp_path / "results" / "sweep.png").exists() == drawn
    assert ("![median fps over the grid](results/sweep.png)" in text) == drawn
    # Regenerating replaces the section in place.
    result = CliRunner().invoke(sweep, args)
    assert result.exit_code == 0, result.output
    assert report.read_text().count("<!-- composer:sweep -->") == 1


def test_json_and_model_axes(make_job):
    job_file = make_job()
    result = CliRunner().invoke(sweep, [str(job_file), "--batch", "2", "--workers", "1", "--lanes", "1,2",
                                        "--threads", "1,2", "--repeats", "2", "--confirm", "0", "-n", "6", "-q",
                                        "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(p["mode"], p["batch"], p["workers"], p["lanes"], p["threads"]) for p in data["points"]] == [
        ("segments", 2, 0, 1, 1), ("segments", 2, 0, 1, 2), ("segments", 2, 0, 2, 1), ("segments", 2, 0, 2, 2),
        ("pipeline", 2, 1, 1, 1), ("pipeline", 2, 1, 1, 2), ("pipeline", 2, 1, 2, 1), ("pipeline", 2, 1, 2, 2)]
    for point in data["points"]:
        assert len(point["runs"]) == 2
        assert point["fps_min"] <= point["fps"] <= point["fps_max"]
        assert point["peak_rss_mb"] > 0
    assert data["best"]["fps"] == max(p["fps"] for p in data["points"])


def test_the_default_point_is_compared_with_the_best(make_job, monkeypatch):
    monkeypatch.setattr("composer.config.defaults.usable_cores", lambda: 2)
    # Scripted speeds: the segment renderer at batch 2 is the best point in the grid (50 fps) and again when
    # rendered in turns with the job's own settings (40 against 50 fps: 80%).
    speeds = {("segments", 1): [30.0, 40.0], ("segments", 2): [50.0, 50.0], ("pipeline", 1): [20.0],
              ("pipeline", 2): [25.0]}
    rendered = []

    def render_point(trial, point):
        rendered.append((point.mode, point.batch))
        return Trial(speeds[point.mode, point.batch].pop(0), 10.0, 2**20, 6)

    monkeypatch.setattr("composer.measure.sweep.render_point", render_point)
    args = [str(make_job()), "--batch", "1,2", "--workers", "2", "--lanes", "2", "--repeats", "1", "--confirm", "1",
            "-n", "6", "-q", "--json"]
    result = CliRunner().invoke(sweep, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # On a CPU with 2 cores the job's own settings are the segment renderer's, one lane per core.
    assert data["default"] == {"mode": "segments", "batch": 1, "workers": 0, "lanes": 2, "threads": 1}
    assert data["best"] == {"mode": "segments", "batch": 2, "workers": 0, "lanes": 2, "threads": 1, "fps": 50.0}
    assert data["confirmation"] == {"best_runs": [50.0], "default_runs": [40.0], "share": 0.8}
    assert rendered[-2:] == [("segments", 2), ("segments", 1)]  # the pair after the grid: best first

    speeds.update({("segments", 1): [40.0], ("segments", 2): [50.0, 50.0], ("pipeline", 2): [25.0]})
    result = CliRunner().invoke(sweep, [*args[:2], "2", *args[3:-1]])  # a grid without batch 1, as text
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        "The job's own settings (batch 1, segments, model 2 x 1 (lanes x threads)) are not in the grid. Rendered "
        "in turns with the best point after the grid (1 run each): 40.0 against 50.0 fps (medians); by pairs, "
        "80% of the best (-20.0%).")


def _scripted_renders(monkeypatch, fps):
    """Make every sweep render return the next of ``fps`` for its point (a dict of lists by batch size), and
    record the order of the renders."""
    order = []

    def render_point(trial, point):
        order.append(point.batch)
        return Trial(fps[point.batch].pop(0), 10.0, 2**20, 6)

    monkeypatch.setattr("composer.measure.sweep.render_point", render_point)
    return order


def test_the_defaults_are_confirmed_in_pairs_against_the_best(make_job, monkeypatch):
    monkeypatch.setattr("composer.config.defaults.usable_cores", lambda: 2)
    job = load_job(make_job())  # its own settings resolve to batch 1
    # In the grid batch 2 looks 25% faster; rendered in turns, it is 2-4% faster pair by pair.
    order = _scripted_renders(monkeypatch, {1: [40.0, 40.0, 49.0, 30.0, 50.0, 48.0],
                                            2: [50.0, 50.0, 50.0, 31.0, 51.0, 50.0]})
    result = run_sweep(job, [1, 2], [2], (1,), repeats=2, frames=6, lanes=(2,), confirm=4, modes=("segments",))
    assert order == [1, 2, 2, 1, 2, 1, 1, 2, 2, 1, 1, 2]  # the grid's rounds rotate; the pairs alternate
    assert result.best.point.batch == 2 and result.confirmation is not None
    assert result.confirmation.share == statistics.median([49 / 50, 30 / 31, 50 / 51, 48 / 50])
    line = result.default_line()
    assert "40.0 fps in the grid, 80% of the best (-20.0%)" in line
    assert "(4 runs each): 48.5 against 50.0 fps (medians); by pairs, 97% of the best (-2.6%)." in line
    assert result.to_json()["confirmation"]["default_runs"] == [49.0, 30.0, 50.0, 48.0]


def test_defaults_that_are_the_best_point_need_no_confirmation(make_job, monkeypatch):
    monkeypatch.setattr("composer.config.defaults.usable_cores", lambda: 2)
    order = _scripted_renders(monkeypatch, {1: [50.0], 2: [40.0]})
    result = run_sweep(load_job(make_job()), [1, 2], [2], (1,), repeats=1, frames=6, lanes=(2,), confirm=3,
                       modes=("segments",))
    assert order == [1, 2] and result.confirmation is None
    assert result.default_line().endswith("are the best point.")


def test_each_renderer_gets_its_points_and_renders_them(make_job, monkeypatch):
    from composer.rendering.observer import RenderStats

    monkeypatch.setattr("composer.config.defaults.usable_cores", lambda: 2)
    rendered = []

    def render_fresh(job, tracer, name):  # the fresh process, as the sweep's render_point calls it
        rendered.append((job.run.mode, job.run.batch, job.run.workers, job.run.lanes))
        tracer.add("latency", 0.0, 0.01, 0)
        return RenderStats(frames=6, seconds=0.5, peak_rss=2**20)

    monkeypatch.setattr("composer.measure.sweep.render_fresh", render_fresh)
    result = run_sweep(load_job(make_job()), [1], [2, 4], repeats=1, frames=6, modes=("segments", "pipeline"))
    assert sorted(rendered) == [("pipeline", 1, 2, 2), ("pipeline", 1, 4, 2), ("segments", 1, None, 2)]
    assert [r.point.workers_label() for r in result.results] == ["segments", "2", "4"]


def test_an_unknown_renderer_is_refused(make_job):
    result = CliRunner().invoke(sweep, [str(make_job()), "--modes", "segments,fast", "-q"])
    assert result.exit_code == 2 and "unknown renderer 'fast'" in result.stderr


def test_without_matplotlib_there_is_no_picture(make_job, tmp_path, monkeypatch):
    monkeypatch.setattr("composer.measure.sweep.have_matplotlib", lambda: False)
    report = tmp_path / "R.md"
    result = CliRunner().invoke(sweep, [str(make_job()), "--batch", "1", "--workers", "1", "--repeats", "1",
                                        "-n", "4", "-q", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "pip install matplotlib" in result.output
    assert "![" not in report.read_text()
    assert not (tmp_path / "results" / "sweep.png").exists()


def test_a_run_that_fails_in_its_process_ends_the_sweep_in_one_line(demo_video_job, tmp_path):
    broken = broken_copy(demo_video_job, tmp_path / "broken", "model.onnx", b"not a model")
    result = CliRunner().invoke(sweep, [str(broken), "--batch", "1,2", "--workers", "1", "--repeats", "2",
                                        "-n", "4", "-q"])
    assert result.exit_code == 2, result.output  # bad input, as `composer run` would say
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "model.onnx: not an ONNX model" in lines[0], result.output


def test_bad_grid_values_are_refused(make_job):
    result = CliRunner().invoke(sweep, [str(make_job()), "--batch", "0,2"])
    assert result.exit_code == 2 and "positive integers" in result.output


def test_machine_description():
    machine = describe_machine()
    assert machine.cores >= 1 and machine.memory > 0 and machine.cpu
    assert "numpy" in machine.packages and "onnxruntime" in "".join(machine.packages)
    assert "| CPU |" in machine.markdown() and "accelerator" in machine.summary()
    assert json.dumps(machine.to_json())
