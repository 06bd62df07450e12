"""Defaults that depend on the machine: model lanes and threads, batch, composite workers, video encoders."""

from __future__ import annotations

import pytest

from composer import plan as plan_module
from composer.errors import JobError
from composer.job import load_job
from composer.plan import (
    ACCELERATOR_BATCH,
    CPU_BATCH,
    EncoderLayout,
    encoder_layout,
    model_layout,
    open_plan,
    run_batch,
    run_workers,
)


@pytest.fixture
def job(make_job):
    return load_job(make_job())


@pytest.mark.parametrize(("cores", "lanes", "threads"), [(1, 1, 1), (2, 2, 1), (3, 2, 1), (8, 2, 4)])
def test_a_cpu_gets_two_single_threaded_lanes_sharing_the_cores(monkeypatch, job, cores, lanes, threads):
    monkeypatch.setattr(plan_module, "usable_cores", lambda: cores)
    layout = model_layout(job)
    assert (layout.lanes, layout.threads, layout.accelerated) == (lanes, threads, False)


def test_an_accelerator_gets_one_lane(monkeypatch, job):
    monkeypatch.setattr(plan_module, "usable_cores", lambda: 8)
    monkeypatch.setattr(plan_module, "expects_accelerator", lambda provider: True)
    layout = model_layout(job)
    assert (layout.lanes, layout.threads, layout.accelerated) == (1, 8, True)


def test_the_job_overrides_lanes_and_threads(monkeypatch, job):
    monkeypatch.setattr(plan_module, "usable_cores", lambda: 8)
    assert model_layout(job.with_run(lanes=3)).text() == "3 lanes x 2 threads"
    assert model_layout(job.with_run(lanes=1, threads=1)).text() == "1 lane x 1 thread"


def test_batch_from_the_job_else_the_provider(job):
    with open_plan(job) as plan:
        model = plan.open_model(1)
    assert run_batch(job, model) == CPU_BATCH
    assert run_batch(job.with_run(batch=3), model) == 3
    model.provider = "CUDAExecutionProvider"  # as a session on a GPU reports it
    assert run_batch(job, model) == ACCELERATOR_BATCH


def test_workers_from_the_job_else_the_cores(monkeypatch, job):
    monkeypatch.setattr(plan_module, "usable_cores", lambda: 1)
    assert run_workers(job) == 2
    monkeypatch.setattr(plan_module, "usable_cores", lambda: 6)
    assert run_workers(job) == 6
    assert run_workers(job.with_run(workers=3)) == 3


@pytest.mark.parametrize(("cores", "layout"), [(1, EncoderLayout(1, 0)), (2, EncoderLayout(2, None)),
                                             (16, EncoderLayout(2, None))])
def test_video_gets_two_encoders_on_one_thread_each(monkeypatch, job, cores, layout):
    # One encoder keeps x264's own threads; two get one each, the last segment x264's own (None).
    monkeypatch.setattr(plan_module, "usable_cores", lambda: cores)
    assert encoder_layout(job) == layout


def test_the_job_sets_encoders_and_their_threads(make_job):
    job = load_job(make_job(), {"run": {"encoders": 3, "encoder_threads": 1}})
    assert encoder_layout(job).text() == "3 encoders x 1 thread"
    assert encoder_layout(job.with_run(encoders=1, encoder_threads=0)).text() == "1 encoder x x264's threads"
    assert encoder_layout(job.with_run(encoders=2, encoder_threads=None)).text() == (
        "2 encoders x 1 thread (x264's own for the last segment)")
    with pytest.raises(JobError, match="run.encoders"):
        load_job(make_job(), {"run": {"encoders": 0}})
