"""scripts/gpu-check: one line where there is no GPU, its grid's jobs, and its dry run on the CPU provider."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from benchmarks import gpu_check
from composer.config.job import load_job


def test_no_nvidia_gpu_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(gpu_check.shutil, "which", lambda name: None)
    assert gpu_check.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpu-check: no NVIDIA GPU") and err.count("\n") == 1


def test_a_gpu_without_onnxruntime_gpu_is_one_line(monkeypatch, tmp_path, capsys):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA H200, 143771 MiB'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(gpu_check.shutil, "which", lambda name: str(smi))
    assert gpu_check.main(["--provider", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "lacks CUDAExecutionProvider" in err and 'pip install ".[gpu]"' in err and err.count("\n") == 1


def test_each_point_asks_for_its_provider_batch_and_precision(make_job, tmp_path):
    job = load_job(make_job())
    fp16 = tmp_path / "m16.onnx"
    trt = gpu_check.point_job(job, "tensorrt", 4, "fp16", fp16, tmp_path / "engines")
    assert (trt.model.provider, trt.model.fp16, trt.model.path, trt.run.batch) == ("tensorrt", True, job.model.path, 4)
    assert trt.model.trt_batches == (1, 8, 8) and trt.model.cache == tmp_path / "engines"
    cuda = gpu_check.point_job(job, "cuda", 1, "fp16", fp16, tmp_path / "engines")
    assert (cuda.model.path, cuda.model.fp16) == (fp16, False)
    assert gpu_check.point_job(job, "cuda", 8, "fp32", fp16, tmp_path).model.path == job.model.path


def test_the_dry_run_on_the_cpu_writes_a_section(tmp_path, capsys):
    report = tmp_path / "RESULTS.md"
    code = gpu_check.main(["--provider", "cpu", "--quick", "--models", "light", "--batches", "2",
                           "--out", str(tmp_path / "work"), "--report", str(report)])
    assert code == 0, capsys.readouterr()
    text = report.read_text()
    assert "## GPU check: no GPU (a dry run on the CPU provider)" in text
    rows = [line for line in text.splitlines() if line.startswith("| light")]
    assert len(rows) == 2 and all("| CPU |" in row for row in rows)


@pytest.mark.parametrize("argv", [["--batches", "16"], ["--provider", "rocm"], ["--size", "big"]])
def test_bad_options_are_refused(argv):
    with pytest.raises(SystemExit) as info:
        gpu_check.parse(argv)
    assert info.value.code == 2


def test_the_script_runs_the_module():
    script = Path(__file__).parents[2] / "scripts" / "gpu-check"
    assert script.stat().st_mode & stat.S_IEXEC and "benchmarks.gpu_check" in script.read_text()


def test_out_of_time_points_are_skipped_not_measured(tmp_path, capsys):
    code = gpu_check.main(["--provider", "cpu", "--quick", "--models", "light", "--precisions", "fp32",
                           "--minutes", "0", "--out", str(tmp_path / "work")])
    out = capsys.readouterr().out
    assert code == 0 and out.count("skipped: out of time") == 2
    assert "2 points skipped" in out
