"""composer profile: stage costs per output frame, the bound they set, and the processor's run beside it."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from composer.cli.measure import profile, sweep
from composer.config.job import load_job
from composer.errors import JobError
from composer.inputs.schedule import schedule
from composer.measure import profile as profiling
from composer.measure.children import ChildFailed, render_fresh
from composer.measure.profile import StageCost, compute_bound, mean_costs, profile_job, trial_job
from composer.rendering.observer import RenderStats
from composer.runtime.trace import Tracer
from tests.conftest import broken_copy


def _profile_json(job_file, *args):
    result = CliRunner().invoke(profile, [str(job_file), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_keys_and_consistency(make_job):
    job_file = make_job(output={"video": "out.mp4"})
    data = _profile_json(job_file, "--frames", "12")
    for key in ("stages", "bound_fps", "fps", "efficiency", "peak_rss_mb", "latency_ms", "cores", "machine"):
        assert key in data
    assert list(data["stages"]) == ["decode", "prepare", "infer", "composite", "write_image", "write_video"]
    cores, bound = data["cores"], data["bound_fps"]
    cpu_ms = [s["cpu_ms"] for s in data["stages"].values()]
    assert all(ms > 0 and s["wall_ms"] > 0 for ms, s in zip(cpu_ms, data["stages"].values()))
    # The bound is what the cores can do with the CPU-seconds of every stage together ...
    assert bound == pytest.approx(cores * 1000 / sum(cpu_ms))
    # ... so no stage's share of it asks more than the cores give, and the slowest stage alone allows more.
    for ms in cpu_ms:
        assert bound * ms / 1000 <= cores + 1e-9
        assert bound <= cores * 1000 / ms
    assert data["efficiency"] == pytest.approx(data["fps"] / bound)
    # The stages were measured on both sides of the render; the bound is from their mean costs, so it lies
    # between the two measurements' bounds.
    before, after = data["bound_fps_before"], data["bound_fps_after"]
    assert min(before, after) - 1e-9 <= bound <= max(before, after) + 1e-9
    assert data["frames"] == 12
    assert data["peak_rss_mb"] > 0
    latency = data["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]


def test_decode_counts_once_per_distinct_template_frame(make_job):
    job_file = make_job(frames=7, outputs=23)
    job = load_job(job_file)
    result = profile_job(job, frames=20)
    assert result.frames == 20
    assert result.decoded == len(np.unique(schedule(20, 7, "pingpong"))) == 7
    assert "7 template frames" in result.stages[0].work


def test_job_without_features_measures_the_first_frames_and_renders_all(make_job):
    job = load_job(make_job(frames=7, outputs=None, nulls=()))
    result = profile_job(job, frames=4)
    assert result.frames == 4 and result.decoded == 4
    assert result.run.frames == 7
    assert result.to_json()["run_frames"] == 7


def test_outputs_of_the_job_are_untouched(make_job):
    job_file = make_job()
    profile_job(load_job(job_file), frames=8)
    root = job_file.parent
    assert not (root / "out").exists() or not any((root / "out").iterdir())
    assert not list(root.glob(".composer-measure-*"))


def test_text_table_and_report_section(make_job, tmp_path):
    job_file = make_job()
    report = tmp_path / "RESULTS.md"
    result = CliRunner().invoke(profile, [str(job_file), "-n", "10", "--report", str(report), "--section", "p1"])
    assert result.exit_code == 0, result.output
    for text in ("decode", "infer", "CPU bound", "efficiency", "latency p50"):
        assert text in result.stdout
    section = report.read_text()
    assert section.count("<!-- composer:p1 -->") == 1 and "<!-- /composer:p1 -->" in section
    assert "| stage | wall ms/frame |" in section and "MiB per 100 frames" in section


def test_bad_job_is_one_line_error(tmp_path):
    result = CliRunner().invoke(profile, [str(tmp_path / "missing.toml")])
    assert result.exit_code == 2
    assert "composer: error:" in result.output


def test_costs_alone_leave_the_run_undescribed(make_job, tmp_path, monkeypatch):
    def no_layout(*args, **kwargs):
        raise AssertionError("the model was timed for a layout nobody asked for")

    job = load_job(make_job())
    monkeypatch.setattr("composer.inputs.plan.Plan.choose_layout", no_layout)
    measured = profiling.measure_stages(job, tmp_path / "scratch", 4, describe=False)
    assert [s.name for s in measured.stages][:4] == ["decode", "prepare", "infer", "composite"]
    assert measured.memory is None and measured.settings == {}


def test_mean_costs_average_each_stage_and_keep_its_facts():
    first = (StageCost("decode", 2.0, 1.0, "7 decoded"), StageCost("infer", 6.0, 4.0, accelerator=True))
    second = (StageCost("decode", 4.0, 3.0, "7 decoded"), StageCost("infer", 8.0, 2.0, accelerator=True))
    assert mean_costs([first, second]) == (StageCost("decode", 3.0, 2.0, "7 decoded"),
                                           StageCost("infer", 7.0, 3.0, accelerator=True))
    assert mean_costs([first]) == first
    with pytest.raises(ValueError, match="different stages"):
        mean_costs([first, second[:1]])


def test_a_machine_that_slows_down_during_the_profile_is_pointed_out(make_job, monkeypatch):
    measure, answers = profiling.measure_stages, []

    def slower_the_second_time(*args, **kwargs):
        measured = measure(*args, **kwargs)
        if answers:  # after the render, every stage costs half as much again as before it
            stages = tuple(dataclasses.replace(s, cpu_ms=1.5 * s.cpu_ms) for s in answers[0].stages)
            measured = dataclasses.replace(measured, stages=stages)
        answers.append(measured)
        return measured

    monkeypatch.setattr(profiling, "measure_stages", slower_the_second_time)
    result = profile_job(load_job(make_job()), frames=6)
    assert len(answers) == 2
    before, after = result.around
    assert before == compute_bound(answers[0].stages, before.cores)
    assert after == compute_bound(answers[1].stages, before.cores)
    assert after.cpu_fps == pytest.approx(before.cpu_fps / 1.5)
    assert result.bound.cpu_ms == pytest.approx((before.cpu_ms + after.cpu_ms) / 2)
    assert result.drift == pytest.approx(1 / 3)
    assert f"drifted by {100 * result.drift:.0f}%" in result.text()
    steady = dataclasses.replace(result, measured=(answers[0].stages, answers[0].stages))
    assert steady.drift == 0 and "drifted" not in steady.text()


def test_rounds_alternate_renders_and_measurements_and_take_the_median(make_job, monkeypatch):
    # Measurements that cost 1x, 2x, 1x and 1x of the first; renders at 100, 50 and 80 fps. Each render is read
    # against the bound of the measurements on either side of it, and the efficiency is the median of those.
    measure, renders, order, firsts = profiling.measure_stages, iter([100.0, 50.0, 80.0]), [], []
    slowdown = iter([1.0, 2.0, 1.0, 1.0])

    def measured_at_its_speed(*args, **kwargs):
        order.append("measure")
        result = measure(*args, **kwargs)
        firsts.append(result.stages)
        factor = next(slowdown)
        return dataclasses.replace(result, stages=tuple(dataclasses.replace(s, cpu_ms=factor * s.cpu_ms)
                                                        for s in firsts[0]))

    def render_at(job, tracer=None, name="render"):
        order.append("render")
        return RenderStats(frames=10, seconds=10 / next(renders), peak_rss=2**20)

    monkeypatch.setattr(profiling, "measure_stages", measured_at_its_speed)
    monkeypatch.setattr(profiling, "render_fresh", render_at)
    result = profile_job(load_job(make_job()), frames=6, rounds=3)
    assert order == ["measure", "render", "measure", "render", "measure", "render", "measure"]
    bounds = [b.cpu_fps for b in result.around]
    assert bounds[1] == pytest.approx(bounds[0] / 2) and bounds[2] == pytest.approx(bounds[0])
    first = bounds[0]
    between = first / 1.5  # the mean of costs 1x and 2x
    expected = [100 / between, 50 / between, 80 / first]
    assert result.efficiencies == pytest.approx(expected)
    assert result.efficiency == pytest.approx(sorted(expected)[1])
    assert result.fps == pytest.approx(80.0)
    text = result.text()
    assert "3 renders of 10 frames at 100.0, 50.0, 80.0 fps" in text and "stages measured 4 times" in text
    assert [r["efficiency"] for r in result.to_json()["rounds"]] == pytest.approx(expected)


def test_rounds_from_the_command_line(make_job):
    data = _profile_json(make_job(), "--frames", "6", "--rounds", "2")
    assert len(data["rounds"]) == 2 and len(data["bound_fps_measured"]) == 3
    assert data["efficiency"] == pytest.approx(np.median([r["efficiency"] for r in data["rounds"]]))
    assert data["bound_fps_before"] == data["bound_fps_measured"][0]


def test_rounds_must_be_positive(make_job):
    with pytest.raises(JobError, match="rounds must be at least 1"):
        profile_job(load_job(make_job()), frames=6, rounds=0)


def test_bound_with_an_accelerator_takes_the_lower():
    stages = (StageCost("decode", 2.0, 2.0), StageCost("infer", 5.0, 1.0, accelerator=True),
              StageCost("composite", 4.0, 4.0))
    bound = compute_bound(stages, cores=4)
    assert bound.cpu_ms == 6.0  # the model's host time is not a CPU stage
    assert bound.cpu_fps == pytest.approx(4000 / 6)
    assert bound.accelerator_fps == pytest.approx(200)
    assert bound.fps == pytest.approx(200) and bound.limit == "accelerator"
    cpu_only = compute_bound((StageCost("infer", 5.0, 5.0),), cores=2)
    assert cpu_only.accelerator_fps is None and cpu_only.fps == pytest.approx(400)
    assert math.isinf(StageCost("x", 0.0, 0.0).max_fps)


def test_interrupt_says_nothing_was_touched(make_job, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("composer.measure.profile.profile_job", interrupted)
    result = CliRunner().invoke(profile, [str(make_job())])
    assert result.exit_code == 130 and "not touched" in result.output


def test_commands_are_registered_on_composer():
    from composer.cli.main import main

    assert main.commands["profile"] is profile and main.commands["sweep"] is sweep


def test_a_fresh_process_renders_and_hands_back_its_spans(demo_video_job, tmp_path):
    job = trial_job(load_job(demo_video_job), 11, tmp_path / "run")
    tracer = Tracer()
    stats = render_fresh(job, tracer)
    assert stats.frames == 11 and stats.seconds > 0 and stats.peak_rss > 0
    assert sorted(s.frame for s in tracer.of("latency")) == list(range(11))
    assert {s.thread for s in tracer.of("infer")} <= {f"composer-{kind}-{k}" for kind in ("model", "segments")
                                                      for k in (0, 1)}
    assert len(list((tmp_path / "run").rglob("*.jpg"))) == 11  # the child wrote the frames


def test_a_fresh_render_that_fails_says_so_in_one_line_with_its_status(demo_video_job, tmp_path):
    broken = broken_copy(demo_video_job, tmp_path / "broken", "template.mp4", b"not a video")
    with pytest.raises(ChildFailed, match="template.mp4") as caught:
        render_fresh(load_job(broken))
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
