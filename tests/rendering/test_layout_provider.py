"""The render's layout follows the provider the session really runs on, not the providers ONNX Runtime lists."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.config import defaults
from composer.config.job import load_job
from composer.rendering.layout import default_layout
from tests.model.fake_gpu import CPU, CUDA, install


@pytest.fixture
def gpu(monkeypatch):
    """A machine whose onnxruntime lists TensorRT and CUDA; sessions run on what ``gpu.runs_on`` says."""
    return install(monkeypatch)


@pytest.fixture
def job(make_job, monkeypatch):
    monkeypatch.setattr(defaults, "usable_cores", lambda: 16)
    return load_job(make_job(), {"model": {"io_binding": False}})  # no CUDA buffers on this CPU


def test_a_gpu_that_fell_back_to_the_cpu_gets_the_cpu_layout(gpu, job, caplog):
    gpu.runs_on = [CPU]
    with caplog.at_level(logging.WARNING, logger="composer"):
        layout = default_layout(job)
    assert layout.segments and layout.batch == defaults.CPU_BATCH and not layout.model.accelerated
    assert "runs on CPUExecutionProvider" in caplog.text


def test_a_gpu_that_runs_gets_the_accelerator_layout(gpu, job):
    gpu.runs_on = [CUDA, CPU]
    layout = default_layout(job)
    assert not layout.segments and layout.model.accelerated
    assert (layout.batch, layout.model.lanes, layout.model.threads) == (defaults.ACCELERATOR_BATCH, 1, 1)
    assert layout.encoders.encoders == 12
    assert {c["image"][0][0] for c in gpu.calls} == {defaults.ACCELERATOR_BATCH}  # every call of one shape


def test_cuda_by_name_that_fell_back_is_exit_2_in_one_line(gpu, make_job):
    gpu.runs_on = [CPU]
    job_file = make_job()
    result = CliRunner().invoke(main, ["run", str(job_file), "--set", "model.provider=cuda", "-q"])
    assert result.exit_code == 2
    assert result.output.startswith("composer: error: model.provider = 'cuda': CUDAExecutionProvider could not be")
    assert result.output.count("\n") == 1
    assert sorted(p.name for p in job_file.parent.iterdir()) == ["features.npy", "job.toml", "model.onnx",
                                                                 "rects.json", "template"]  # nothing written
