"""Interrupt a real `composer run` part-way, resume it, and get exactly the uninterrupted result."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner, Result

from composer.cli.main import main
from composer.output.resume import MANIFEST, SEGMENT_FRAMES, parts_folder
from tests.conftest import read_folder, write_frames, write_job, write_wav

OUTPUTS = 2 * SEGMENT_FRAMES + 60  # three video segments, the last one partial
SIZE = (320, 240)


def make_resume_job(root: Path, size: tuple[int, int] = SIZE, audio: bool = False, video: bool = True,
                    outputs: int = OUTPUTS, run: dict[str, object] | None = None) -> Path:
    """A job of ``outputs`` frames (by default three video segments, the last one partial) from a 9-frame
    template, on a fixed layout (two segment-renderer lanes), so that its video's bytes do not depend on the
    machine."""
    from composer.model.zoo import build_elementwise

    root.mkdir(parents=True, exist_ok=True)
    write_frames(root / "template", 9, size=size)
    width, height = size
    boxes = [[10 + t, 20, width * 5 // 8 + t, height - 50] for t in range(9)]
    (root / "rects.json").write_text(json.dumps(boxes))
    np.save(root / "features.npy", np.random.default_rng(1).normal(size=(outputs, 3)).astype(np.float32))
    build_elementwise(root / "model.onnx", window=60, in_channels=6, feature_shape=(6,), seed=2)
    output: dict[str, object] = {"frames": "out/frames", "format": "png", "preset": "ultrafast"}
    if video:
        output["video"] = "out/result.mp4"
    if audio:
        write_wav(root / "speech.wav", seconds=outputs / 25)
        output["audio"] = "speech.wav"
    return write_job(root / "job.toml", {
        "template": {"frames": "template", "rects": "rects.json"},
        "features": {"path": "features.npy", "window": 2},
        "model": {"path": "model.onnx", "crop": 64, "border": 2, "inputs": ["crop", "masked"], "mask": [0, 30, 60, 30]},
        "output": output,
        "run": {"batch": 4, "workers": 2, "mode": "segments", "lanes": 2, **(run or {})},
    })


def _job(root: Path) -> Path:
    return make_resume_job(root)


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


# --- exact or refused ------------------------------------------------------------------------------------------

SMALL = (160, 120)


@pytest.fixture(scope="module")
def small_whole(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """The small job with audio, rendered without interruption: its job file and its outputs' bytes."""
    job_file = make_resume_job(tmp_path_factory.mktemp("small-whole"), SMALL, audio=True)
    result = CliRunner().invoke(main, ["run", str(job_file), "-q"])
    assert result.exit_code == 0, result.stderr
    return job_file, _output_bytes(job_file.parent / "out")


def _output_bytes(out: Path) -> dict[str, bytes]:
    """Every finished output file by name (images and video), hidden files left out."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)}


def _copy_job(job_file: Path, root: Path) -> Path:
    """The job's inputs (not its outputs) copied to ``root``; its job file there."""
    shutil.copytree(job_file.parent, root, ignore=shutil.ignore_patterns("out"))
    return root / job_file.name


def _stopped_run(job_file: Path, monkeypatch: pytest.MonkeyPatch, at: int = 120,
                 args: tuple[str, ...] = ()) -> Result:
    """``composer run`` stopped by a KeyboardInterrupt (as Ctrl-C raises it) at the ``at``-th composite."""
    from composer.rendering import step

    original, calls = step.composite, itertools.count()

    def stopping(*a: object, **k: object) -> object:
        if next(calls) == at:
            raise KeyboardInterrupt
        return original(*a, **k)

    with monkeypatch.context() as patch:
        patch.setattr(step, "composite", stopping)
        return CliRunner().invoke(main, ["run", str(job_file), "-q", *args])


def _keeping_size_and_time(path: Path, content: bytes) -> None:
    """Overwrite ``path`` in place with ``content`` of the same size, and put its modification time back."""
    before = path.stat()
    assert len(content) == before.st_size
    path.write_bytes(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _same_size_edit(root: Path, name: str) -> bytes:
    if name == "rects.json":
        return (root / name).read_bytes().replace(b"[10, 20,", b"[11, 20,", 1)
    if name == "features.npy":
        data = bytearray((root / name).read_bytes())
        data[-4:] = np.float32(7.0).tobytes()  # the last feature row's last value
        return bytes(data)
    if name == "model.onnx":
        from composer.model.zoo import build_elementwise

        other = build_elementwise(root / "other.onnx", window=60, in_channels=6, feature_shape=(6,), seed=5)
        return other.read_bytes()
    data = bytearray((root / name).read_bytes())  # speech.wav: some samples swapped
    data[4000:4100] = data[4100:4200]
    return bytes(data)


@pytest.mark.timeout(120)
def test_resume_refuses_whatever_changes_the_bytes(tmp_path, monkeypatch, small_whole):
    """One interrupted run, then every change that would make its frames and the new ones differ is refused by
    name, leaving the run as it was; settings that change only the speed are accepted, and the result is the
    uninterrupted run's, byte for byte."""
    job_file = _copy_job(small_whole[0], tmp_path / "job")
    root = job_file.parent
    assert _stopped_run(job_file, monkeypatch).exit_code == 130

    def refused(part: str, *args: str) -> None:
        result = CliRunner().invoke(main, ["run", str(job_file), "-q", "--resume", *args])
        assert result.exit_code == 2, result.stderr
        assert "different job" in result.stderr and f"({part} changed)" in result.stderr, result.stderr

    # Inputs edited in place, size and modification time kept (the fingerprint read only those before).
    for name, part in [("rects.json", "template.rects"), ("features.npy", "features.path"),
                       ("model.onnx", "model.path"), ("speech.wav", "output.audio")]:
        original = (root / name).read_bytes()
        _keeping_size_and_time(root / name, _same_size_edit(root, name))
        refused(part)
        _keeping_size_and_time(root / name, original)
    with monkeypatch.context() as patch:
        patch.setattr("composer.output.resume.__version__", "999.0")
        refused("composer")

    result = CliRunner().invoke(main, ["run", str(job_file), "-q", "--resume", "-b", "1", "--set",
                                       "run.memory_fraction=0.4", "--set", "run.lanes=1", "--set",
                                       "run.mode=pipeline"])  # [run] keys change only the speed: accepted
    assert result.exit_code == 0, result.stderr
    assert _output_bytes(root / "out") == small_whole[1]


@pytest.mark.timeout(120)
def test_a_fresh_run_over_an_older_runs_images_resumes_exactly(tmp_path, monkeypatch):
    """A finished run of other rectangles leaves 130 images; a fresh run of the edited job stopped at frame 60
    must not count the old images 60-129 as its own when resumed."""
    job_file = make_resume_job(tmp_path / "job", SMALL, video=False, outputs=130)
    assert CliRunner().invoke(main, ["run", str(job_file), "-q"]).exit_code == 0  # the older job's images
    rects = job_file.parent / "rects.json"
    rects.write_text(rects.read_text().replace("[10, 20,", "[12, 20,"))
    expected = make_resume_job(tmp_path / "expected", SMALL, video=False, outputs=130)
    (expected.parent / "rects.json").write_text(rects.read_text())
    assert CliRunner().invoke(main, ["run", str(expected), "-q"]).exit_code == 0

    assert _stopped_run(job_file, monkeypatch, at=60).exit_code == 130
    result = CliRunner().invoke(main, ["run", str(job_file), "-q", "--resume"])
    assert result.exit_code == 0, result.stderr
    assert _output_bytes(job_file.parent / "out") == _output_bytes(expected.parent / "out")


def _stop_in(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Raise a KeyboardInterrupt at one moment of a run, as a Ctrl-C landing there would."""
    from composer.output import outputs, resume, video_segments
    from composer.rendering import layout

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    if where == "warm-up":
        monkeypatch.setattr(layout, "warm_up", interrupt)
    elif where == "fingerprint":
        monkeypatch.setattr(outputs, "fingerprint", interrupt)
    elif where == "clearing":
        monkeypatch.setattr(resume, "_clear_images", interrupt)
    elif where == "after the join":
        join = video_segments.SegmentedVideoSink.join

        def joined_then_interrupted(self: video_segments.SegmentedVideoSink) -> None:
            join(self)
            raise KeyboardInterrupt

        monkeypatch.setattr(video_segments.SegmentedVideoSink, "join", joined_then_interrupted)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("where", ["warm-up", "fingerprint", "clearing", "after the join"])
def test_an_interrupt_at_any_moment_says_truly_what_to_do(tmp_path, monkeypatch, small_whole, where):
    """The message offers ``--resume`` only where the outputs hold a state it continues; either way, doing what
    it says ends with the uninterrupted run's bytes. Before the run, an earlier run of the job was stopped, so
    there is a state on disk that a careless hint could point at."""
    job_file = _copy_job(small_whole[0], tmp_path / "job")
    assert _stopped_run(job_file, monkeypatch, at=30).exit_code == 130
    with monkeypatch.context() as patch:
        _stop_in(patch, where)
        stopped = CliRunner().invoke(main, ["run", str(job_file), "-q"])
    assert stopped.exit_code == 130, stopped.stderr
    lines = stopped.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("composer: interrupted"), stopped.stderr
    if where in ("warm-up", "fingerprint"):
        assert "before any output was written" in lines[0]
    resume = ["--resume"] if "--resume" in lines[0] else []
    assert bool(resume) is (where == "after the join")
    result = CliRunner().invoke(main, ["run", str(job_file), "-q", *resume])
    assert result.exit_code == 0, result.stderr
    assert _output_bytes(job_file.parent / "out") == small_whole[1]
    assert not (job_file.parent / "out" / "frames" / MANIFEST).exists()


def test_the_models_speed_only_keys_leave_the_fingerprint_as_it_was(make_job, tmp_path):
    """TensorRT's cache folder appears after the first run; the GPU's number, its memory limit and IO binding
    do not change the bytes: a resume with them changed is still the same job."""
    from composer.config.job import load_job
    from composer.output.resume import fingerprint

    job_file = make_job()
    job = load_job(job_file)
    changed = load_job(job_file, {"model": {"cache": str(tmp_path / "engines"), "device_id": 1,
                                            "gpu_memory_limit": "1GiB", "io_binding": True}})
    assert fingerprint(job, 23) == fingerprint(changed, 23)
    assert fingerprint(job, 23) != fingerprint(load_job(job_file, {"model": {"fp16": True}}), 23)
