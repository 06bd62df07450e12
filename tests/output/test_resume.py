"""Interrupt a real `composer run` part-way, resume it, and get exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.output.resume import SEGMENT_FRAMES, parts_folder
from tests.conftest import read_folder, write_frames, write_job

OUTPUTS = 2 * SEGMENT_FRAMES + 60  # three video segments, the last one partial
SIZE = (320, 240)


def _job(root: Path) -> Path:
    from composer.model.zoo import build_elementwise

    root.mkdir(parents=True, exist_ok=True)
    write_frames(root / "template", 9, size=SIZE)
    boxes = [[10 + t, 20, 200 + t, 190] for t in range(9)]
    (root / "rects.json").write_text(json.dumps(boxes))
    np.save(root / "features.npy", np.random.default_rng(1).normal(size=(OUTPUTS, 3)).astype(np.float32))
    build_elementwise(root / "model.onnx", window=60, in_channels=6, feature_shape=(6,), seed=2)
    return write_job(root / "job.toml", {
        "template": {"frames": "template", "rects": "rects.json"},
        "features": {"path": "features.npy", "window": 2},
        "model": {"path": "model.onnx", "crop": 64, "border": 2, "inputs": ["crop", "masked"], "mask": [0, 30, 60, 30]},
        "output": {"frames": "out/frames", "format": "png", "video": "out/result.mp4", "preset": "ultrafast"},
        "run": {"batch": 4, "workers": 2},
    })


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    job_file = _job(tmp_path_factory.mktemp("whole"))
    result = CliRunner().invoke(main, ["run", str(job_file), "-q"])
    assert result.exit_code == 0, result.stderr
    out = job_file.parent / "out"
    return read_folder(out / "frames"), _decode(out / "result.mp4")


# `composer` as started in a terminal, where Ctrl-C reaches it. A shell that starts a job in the background
# (`pytest &`, some CI runners) makes it and its children ignore SIGINT, and Python then installs no handler
# for it: the child restores the one Python installs at start-up.
_COMPOSER_IN_A_TERMINAL = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                           "from composer.cli.main import main; main()")


def _interrupt_when(job_file: Path, images: int, sig: int) -> subprocess.CompletedProcess[str]:
    frames = job_file.parent / "out" / "frames"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-c", _COMPOSER_IN_A_TERMINAL, "run", str(job_file), "-q"],
                               stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if frames.exists() and len(list(frames.glob("*.png"))) >= images:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run finished before it could be interrupted"
    sent = time.monotonic()
    process.send_signal(sig)
    out, err = process.communicate(timeout=30)
    stopped = time.monotonic() - sent
    assert stopped < 5, f"took {stopped:.1f} s to stop"
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize(("sig", "at"), [(signal.SIGINT, SEGMENT_FRAMES + 40), (signal.SIGTERM, 30)])
def test_interrupt_then_resume_is_identical(tmp_path, uninterrupted, sig, at):
    job_file = _job(tmp_path / "job")
    stopped = _interrupt_when(job_file, at, sig)
    assert stopped.returncode == 130, stopped.stderr
    assert "--resume" in stopped.stderr and "Traceback" not in stopped.stderr
    out = job_file.parent / "out"
    assert not (out / "result.mp4").exists(), "an interrupted run left a finished-looking video"
    kept = len(list((out / "frames").glob("*.png")))
    assert kept >= at, "finished images were lost"
    assert not list((out / "frames").glob(".*.tmp"))

    resumed = CliRunner().invoke(main, ["run", str(job_file), "-q", "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    expected_images, expected_video = uninterrupted
    images = read_folder(out / "frames")
    assert len(images) == OUTPUTS
    assert all(np.array_equal(a, b) for a, b in zip(expected_images, images))
    video = _decode(out / "result.mp4")
    assert len(video) == OUTPUTS
    assert all(np.array_equal(a, b) for a, b in zip(expected_video, video))
    assert not parts_folder(out / "result.mp4").exists()
    assert not (out / "frames" / ".composer-run.json").exists()


def test_resume_without_an_interrupted_run(make_job):
    job_file = make_job()
    result = CliRunner().invoke(main, ["run", str(job_file), "-q", "--resume"])
    assert result.exit_code == 2
    assert "nothing to resume" in result.stderr


def test_resume_refuses_a_changed_job(tmp_path):
    job_file = _job(tmp_path / "job")
    stopped = _interrupt_when(job_file, 20, signal.SIGINT)
    assert stopped.returncode == 130
    features = np.load(job_file.parent / "features.npy")
    np.save(job_file.parent / "features.npy", features * 2)
    result = CliRunner().invoke(main, ["run", str(job_file), "-q", "--resume"])
    assert result.exit_code == 2
    assert "different job" in result.stderr
