"""Defaults that depend on the machine: model lanes and threads, batch, composite workers, video encoders."""

from __future__ import annotations

import pytest

from composer.config import defaults
from composer.config.defaults import (
    ACCELERATOR_BATCH,
    CHEAP_SECONDS_PER_PIXEL,
    CPU_BATCH,
    EncoderLayout,
    cheap_model,
    encoder_layout,
    model_layout,
    run_workers,
)
from composer.config.job import load_job
from composer.errors import JobError
from composer.inputs.plan import open_plan
from composer.rendering import layout as layout_module
from composer.rendering.layout import PROBE_CALLS, choose_layout, frame_seconds, open_render, run_batch


@pytest.fixture
def job(make_job):
    return load_job(make_job())


@pytest.mark.parametrize(("cores", "lanes", "threads"), [(1, 1, 1), (2, 2, 1), (3, 2, 1), (8, 2, 4)])
def test_a_cpu_gets_two_single_threaded_lanes_sharing_the_cores(monkeypatch, job, cores, lanes, threads):
    monkeypatch.setattr(defaults, "usable_cores", lambda: cores)
    layout = model_layout(job, False)
    assert (layout.lanes, layout.threads, layout.accelerated) == (lanes, threads, False)


def test_an_accelerator_gets_one_lane(monkeypatch, job):
    monkeypatch.setattr(defaults, "usable_cores", lambda: 8)
    layout = model_layout(job, accelerated=True)
    assert (layout.lanes, layout.threads, layout.accelerated) == (1, 1, True)


def test_the_job_overrides_lanes_and_threads(monkeypatch, job):
    monkeypatch.setattr(defaults, "usable_cores", lambda: 8)
    assert model_layout(job.with_run(lanes=3), False).text() == "3 lanes x 2 threads"
    assert model_layout(job.with_run(lanes=1, threads=1), False).text() == "1 lane x 1 thread"


@pytest.mark.parametrize(("seconds", "cores", "cheap"), [
    (0.0018, 2, True),  # the light benchmark model at 1280x720
    (0.045, 2, False),  # the demo U-Net
    (0.0036, 2, True),
    (0.0038, 2, False),
    (0.0018, 3, True),
    (0.0018, 4, False),  # three other cores would outrun one model thread
])
def test_a_model_is_cheap_while_one_thread_keeps_up_with_the_other_cores(seconds, cores, cheap):
    assert CHEAP_SECONDS_PER_PIXEL * 1280 * 720 == pytest.approx(0.0037, abs=1e-4)
    assert cheap_model(seconds, 1280 * 720, cores) is cheap


@pytest.mark.parametrize("cores", [2, 8])
def test_a_cheap_model_gets_one_lane_on_one_thread(monkeypatch, job, cores):
    monkeypatch.setattr(defaults, "usable_cores", lambda: cores)
    assert model_layout(job, False, cheap=True).text() == "1 lane x 1 thread"
    assert model_layout(job.with_run(lanes=2), False, cheap=True).text() == f"2 lanes x {cores // 2} thread" + "s" * (
        cores > 2)
    assert model_layout(job.with_run(threads=2), False, cheap=True).text() == "2 lanes x 2 threads"


def test_the_accelerator_layout_does_not_depend_on_the_cost(monkeypatch, job):
    monkeypatch.setattr(defaults, "usable_cores", lambda: 8)
    assert model_layout(job, True, cheap=True).text() == "1 lane x 1 thread"


@pytest.mark.parametrize(("seconds", "lanes"), [(0.0, 1), (10.0, 2)])
def test_a_render_times_the_model_on_one_thread_and_keeps_that_session(monkeypatch, job, seconds, lanes):
    monkeypatch.setattr(defaults, "usable_cores", lambda: 2)
    timed = []
    monkeypatch.setattr(layout_module, "frame_seconds", lambda model, batch: timed.append(model) or seconds)
    with open_plan(job.with_run(mode="pipeline")) as plan:
        layout, models = open_render(plan)
    assert layout.model.lanes == lanes
    assert [(len(models), m.threads) for m in models] == [(lanes, 1)] * lanes
    assert models[0] is timed[0], "the timed one-thread session is the first lane"


@pytest.mark.parametrize("run", [{"lanes": 2}, {"threads": 1}])
def test_a_layout_the_job_sets_is_not_timed(monkeypatch, job, run):
    monkeypatch.setattr(defaults, "usable_cores", lambda: 2)
    monkeypatch.setattr(layout_module, "frame_seconds", lambda model, batch: pytest.fail("the model was timed"))
    job = job.with_run(**run)
    with open_plan(job.with_run(mode="pipeline")) as plan:
        layout, _ = choose_layout(plan)
    assert layout.model == model_layout(job, False)


def test_frame_seconds_times_a_real_model(job):
    with open_plan(job) as plan:
        model = plan.open_model(1)
    seconds = frame_seconds(model, run_batch(job, model))  # the function itself, not conftest's stand-in
    assert 0 < seconds < 10


def test_frame_seconds_is_the_fastest_timed_call_per_frame(monkeypatch):
    calls = []
    clock = iter([0.0, 0.5, 1.0, 1.2, 2.0, 2.9])  # calls of 0.5, 0.2 and 0.9 s

    class Inputs:
        image_shape, feature_shape = (6, 4, 4), (2, 3)

    class Fake:
        inputs = Inputs()

        def run(self, images, features):
            calls.append((images.shape, features.shape))

    monkeypatch.setattr(layout_module.time, "perf_counter", lambda: next(clock))
    assert frame_seconds(Fake(), 4) == pytest.approx(0.2 / 4)
    assert calls == [((4, 6, 4, 4), (4, 2, 3))] * (1 + PROBE_CALLS)


def test_a_cheap_model_is_timed_until_the_calls_add_up(monkeypatch):
    # Calls of 20, 20, 5, 4 and 20 ms: three are not enough (60 ms would be); the fastest of all five counts.
    ends = iter([0.02, 0.02, 0.005, 0.004, 0.02])
    now = [0.0]

    def clock():
        return now[0]

    class Inputs:
        image_shape, feature_shape = (6, 4, 4), None

    class Fake:
        inputs = Inputs()
        runs = 0

        def run(self, images, features):
            Fake.runs += 1
            if Fake.runs > 1:  # the warm-up call is not timed
                now[0] += next(ends)

    monkeypatch.setattr(layout_module.time, "perf_counter", clock)
    assert frame_seconds(Fake(), 2) == pytest.approx(0.004 / 2)
    assert Fake.runs == 1 + 5


def test_batch_from_the_job_else_the_provider(job):
    with open_plan(job) as plan:
        model = plan.open_model(1)
    assert run_batch(job, model) == CPU_BATCH
    assert run_batch(job.with_run(batch=3), model) == 3
    model.provider = "CUDAExecutionProvider"  # as a session on a GPU reports it
    assert run_batch(job, model) == ACCELERATOR_BATCH


def test_workers_from_the_job_else_the_cores(monkeypatch, job):
    monkeypatch.setattr(defaults, "usable_cores", lambda: 1)
    assert run_workers(job) == 2
    monkeypatch.setattr(defaults, "usable_cores", lambda: 6)
    assert run_workers(job) == 6
    assert run_workers(job.with_run(workers=3)) == 3


@pytest.mark.parametrize(("cores", "layout"), [(1, EncoderLayout(1)), (2, EncoderLayout(2)), (8, EncoderLayout(2)),
                                             (16, EncoderLayout(5))])
def test_video_gets_encoders_on_one_thread_each(monkeypatch, job, cores, layout):
    monkeypatch.setattr(defaults, "usable_cores", lambda: cores)
    assert encoder_layout(job) == layout


def test_the_job_sets_encoders_and_not_their_threads(make_job):
    job = load_job(make_job(), {"run": {"encoders": 3}})
    assert encoder_layout(job).text() == "3 encoders x 1 thread"
    with pytest.raises(JobError, match="run.encoder_threads: no longer a key"):
        load_job(make_job(), {"run": {"encoder_threads": 1}})
    with pytest.raises(JobError, match="run.encoders"):
        load_job(make_job(), {"run": {"encoders": 0}})


# cores, accelerated -> renderer, segment lanes, pipeline lanes x threads, workers, encoders, batch
# (docs/design.md, "Many cores").
MACHINES = [
    (1, False, "pipeline", 1, "1 lane x 1 thread", 2, 1, CPU_BATCH),
    (2, False, "segments", 2, "2 lanes x 1 thread", 2, 2, CPU_BATCH),
    (4, False, "segments", 4, "2 lanes x 2 threads", 4, 2, CPU_BATCH),
    (8, False, "segments", 8, "2 lanes x 4 threads", 8, 2, CPU_BATCH),
    (16, False, "segments", 16, "2 lanes x 8 threads", 16, 5, CPU_BATCH),
    (64, False, "segments", 64, "8 lanes x 8 threads", 32, 21, CPU_BATCH),
    (4, True, "pipeline", 4, "1 lane x 1 thread", 4, 3, ACCELERATOR_BATCH),
    (16, True, "pipeline", 16, "1 lane x 1 thread", 16, 12, ACCELERATOR_BATCH),
    (64, True, "pipeline", 64, "1 lane x 1 thread", 32, 48, ACCELERATOR_BATCH),
]


@pytest.mark.parametrize(("cores", "accelerated", "renderer", "segment_lanes", "pipeline", "workers", "encoders",
                          "batch"), MACHINES)
def test_the_defaults_on_many_cores(monkeypatch, job, cores, accelerated, renderer, segment_lanes, pipeline,
                                    workers, encoders, batch):
    monkeypatch.setattr(defaults, "usable_cores", lambda: cores)
    assert ("segments" if defaults.segment_mode(job, accelerated) else "pipeline") == renderer
    lanes = defaults.segment_layout(job, accelerated)
    assert (lanes.lanes, lanes.threads) == (segment_lanes, 1)
    assert model_layout(job, accelerated).text() == pipeline
    assert run_workers(job) == workers
    assert encoder_layout(job, accelerated).encoders == encoders
    assert defaults.wanted_batch(job, accelerated) == batch


def test_x264_does_not_cap_an_accelerator_on_16_cores(monkeypatch, job):
    """Each encoder is one x264 thread on its own segment. With RESULTS.md's costs per 1280x720 frame (x264
    about 26 ms, decode, crop, paste and jpg about 10 ms), the encoders beside an accelerator encode at least as
    fast as the remaining cores deliver frames."""
    monkeypatch.setattr(defaults, "usable_cores", lambda: 16)
    layout = encoder_layout(job, accelerated=True)
    assert layout == EncoderLayout(12)
    x264_fps, others_fps = layout.encoders * 1000 / 26, (16 - layout.encoders) * 1000 / 10
    assert x264_fps >= others_fps
    assert encoder_layout(job, accelerated=False).encoders == 5  # on a CPU the model takes most cores
    assert encoder_layout(job.with_run(encoders=3), accelerated=True).encoders == 3
