"""composer profile: stage costs per output frame, the bound they set, and the processor's run beside it."""

from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np
import pytest
from click.testing import CliRunner

from composer.cli.measure import profile, sweep
from composer.config.defaults import EncoderLayout, ModelLayout
from composer.config.job import load_job
from composer.errors import JobError
from composer.inputs.schedule import schedule
from composer.measure import profile as profiling
from composer.measure import stages
from composer.measure.children import ChildFailed, render_fresh
from composer.measure.profile import profile_job
from composer.measure.stages import StageCost, compute_bound, mean_costs
from composer.measure.trial import trial_job
from composer.model.session import Model
from composer.rendering.layout import RenderLayout
from composer.rendering.observer import RenderStats
from composer.runtime.trace import Tracer
from tests.conftest import broken_copy

RENDERED = RenderLayout("pipeline", ModelLayout(1, 1, False), 1, 2, 10, EncoderLayout(1))


def _profile_json(job_file, *args):
    result = CliRunner().invoke(profile, [str(job_file), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


SPIN_MS = 10.0  # CPU milliseconds the model is made to cost per frame, far above every other stage here
MODELLED = 10  # of the 12 profiled frames (template frames 0 1 2 3 4 5 6 5 4 3 2 1; frame 3 has no rectangle)


def _spinning_model(monkeypatch):
    """Make every model call cost SPIN_MS of this thread's CPU per frame on top of its own (tiny) work."""
    run = Model.run

    def spin(self, images, features=None):
        end = time.thread_time() + SPIN_MS / 1000 * len(images)
        while time.thread_time() < end:
            pass
        return run(self, images, features)

    monkeypatch.setattr(Model, "run", spin)


def _scripted_render(monkeypatch):
    """The processor's render, in place of the fresh process: 12 frames in 0.5 s, latencies of 10, 20, ...,
    120 ms, a peak RSS of 64 MiB."""

    def render(job, tracer, name="render"):
        for k in range(12):
            tracer.add("latency", 0.0, (k + 1) / 100, k)
        return RenderStats(frames=12, seconds=0.5, peak_rss=64 * 2**20, layout=RENDERED)

    monkeypatch.setattr(profiling, "render_fresh", render)


@pytest.mark.timeout(60)
def test_json_reports_a_model_of_known_cost_and_the_bound_it_sets(make_job, monkeypatch):
    """A model made to cost a known CPU time per frame, profiled on 2 and then 4 cores with a scripted render:
    the JSON finds that cost in the infer stage, a bound that it sets and that doubles with the cores, and the
    render's speed, peak and latencies as the render gave them."""
    _spinning_model(monkeypatch)
    _scripted_render(monkeypatch)
    job_file = make_job(output={"video": "out.mp4"})
    runs = {}
    for cores in (2, 4):
        monkeypatch.setattr("composer.config.defaults.usable_cores", lambda cores=cores: cores)
        runs[cores] = _profile_json(job_file, "--frames", "12")
    data = runs[2]
    for key in ("stages", "bound_fps", "fps", "efficiency", "peak_rss_mb", "latency_ms", "cores", "machine"):
        assert key in data
    assert list(data["stages"]) == ["decode", "prepare", "infer", "composite", "write_image", "write_video"]
    assert data["frames"] == 12 and data["template_frames_decoded"] == 7 and data["cores"] == 2
    # The model's known cost is found in the infer stage, on the profiling thread's CPU clock, and nowhere else.
    infer = data["stages"]["infer"]
    assert f"for {MODELLED} frames" in infer["work"]
    floor = SPIN_MS * MODELLED / 12  # CPU ms per output frame the model was made to cost
    assert floor <= infer["cpu_ms"] < 1.5 * floor
    others = [s["cpu_ms"] for name, s in data["stages"].items() if name != "infer"]
    assert all(0 < ms < floor / 2 for ms in others)
    # The bound is what 2 cores allow with that cost and the others': below 2 cores over the model alone, and
    # not far below, since the model dominates.
    assert 0.5 * 2000 / floor < data["bound_fps"] <= 2000 / floor
    # Twice the cores, about twice the bound; the same render (24 fps) is then about half as efficient.
    assert runs[4]["cores"] == 4
    assert 1.7 < runs[4]["bound_fps"] / data["bound_fps"] < 2.3
    assert data["fps"] == runs[4]["fps"] == pytest.approx(24.0)
    assert 0 < runs[4]["efficiency"] < data["efficiency"] < 1
    assert 0.4 < runs[4]["efficiency"] / data["efficiency"] < 0.6
    # The render's own facts are reported as it gave them.
    assert data["peak_rss_mb"] == pytest.approx(64.0)
    assert data["latency_ms"]["p50"] == pytest.approx(65.0)
    assert 65.0 < data["latency_ms"]["p95"] <= data["latency_ms"]["p99"] <= 120.0


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


def test_measuring_the_stages_chooses_no_layout(make_job, tmp_path, monkeypatch):
    def no_layout(*args, **kwargs):
        raise AssertionError("the model was timed for a layout nobody asked for")

    job = load_job(make_job())
    monkeypatch.setattr("composer.rendering.layout.choose_layout", no_layout)
    monkeypatch.setattr("composer.rendering.layout.frame_seconds", no_layout)
    measured = stages.measure_stages(job, tmp_path / "scratch", 4)
    assert [s.name for s in measured.stages][:4] == ["decode", "prepare", "infer", "composite"]


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
        return RenderStats(frames=10, seconds=10 / next(renders), peak_rss=2**20, layout=RENDERED)

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
