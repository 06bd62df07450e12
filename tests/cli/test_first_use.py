"""The rough edges a new user hit (issue 23): stale frames, audio and video lengths, the mask, clearing a key with
``--set``, previews, ``composer init``, the help text, the sweep's size and the demo's log."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.config.job import load_job
from tests.conftest import read_folder, write_wav


def _invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line(result) -> str:
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- a frames folder holding more numbered images than the job makes ---------------------------------------------


def test_stale_frames_are_refused_before_the_first_frame(make_job):
    job_file = make_job()  # 23 output frames into out/
    assert _invoke("run", job_file, "-q").exit_code == 0
    out = job_file.parent / "out"
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = _invoke("run", job_file, "-q", "-n", 10)
    assert result.exit_code == 2, result.output
    line = _one_line(result)
    assert str(out) in line and "13 numbered images" in line and "--overwrite" in line
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing written


def test_overwrite_removes_only_composers_numbered_images(make_job):
    job_file = make_job()
    assert _invoke("run", job_file, "-q").exit_code == 0
    out = job_file.parent / "out"
    (out / "notes.txt").write_text("mine")
    (out / "12.png").write_bytes(b"not composer's: too few digits")
    (out / "000030.jpg").write_bytes(b"another format of composer's")
    result = _invoke("run", job_file, "-q", "-n", 10, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [*(f"{i:06d}.png" for i in range(10)), "12.png", "notes.txt"]


def test_a_preview_renders_the_first_frames_as_the_whole_job_does(make_job, tmp_path):
    job_file = make_job()
    assert _invoke("run", job_file, "-q", "-f", tmp_path / "all").exit_code == 0
    result = _invoke("run", job_file, "-q", "-n", 5, "-f", tmp_path / "preview")
    assert result.exit_code == 0, result.output
    preview, whole = read_folder(tmp_path / "preview"), read_folder(tmp_path / "all")
    assert len(preview) == 5 and len(whole) == 23
    assert all((a == b).all() for a, b in zip(preview, whole))
    reference = _invoke("run", job_file, "-q", "-n", 5, "--reference", "-f", tmp_path / "reference")
    assert reference.exit_code == 0 and len(read_folder(tmp_path / "reference")) == 5


# --- a video more than a frame longer or shorter than its audio -------------------------------------------------


@pytest.mark.parametrize(("seconds", "warned"), [(3.0, True), (0.5, True), (23 / 25, False), (23 / 25 + 0.03, False)])
def test_audio_and_video_lengths_that_differ_by_more_than_a_frame_are_warned_of(make_job, tmp_path, caplog, seconds,
                                                                                   warned):
    from composer.rendering.render import render

    job_file = make_job()
    audio = write_wav(tmp_path / "speech.wav", seconds=seconds)
    job = load_job(job_file, {"output": {"video": str(tmp_path / "v.mp4"), "audio": str(audio), "fps": 25}})
    with caplog.at_level(logging.WARNING, logger="composer"):
        render(job)
    lines = [r.getMessage() for r in caplog.records if "the audio lasts" in r.getMessage()]
    assert len(lines) == (1 if warned else 0)
    if warned:
        assert f"{seconds:.2f} s" in lines[0] and "0.92 s" in lines[0] and "\n" not in lines[0]


# --- a mask outside the model window ------------------------------------------------------------------------------


def test_a_mask_outside_the_model_window_exits_2_before_the_first_frame(make_job):
    job_file = make_job()  # crop 24, border 2: a 20 x 20 window
    result = _invoke("run", job_file, "-q", "--set", "model.mask=[2, 10, 16, 11]")
    assert result.exit_code == 2
    assert "model.mask" in _one_line(result) and "20 x 20" in _one_line(result)
    assert not (job_file.parent / "out").exists()


# --- an empty --set clears the key ------------------------------------------------------------------------------


def test_an_empty_set_clears_a_key_so_another_can_replace_it(make_job, tmp_path):
    job_file = make_job()
    video = tmp_path / "template.mp4"
    job = load_job(job_file, {"template": {"frames": "", "video": str(video)}})
    assert job.template.source == video
    from composer.cli.common import overrides

    parsed = overrides(None, None, None, None, None, ("template.frames=", f"template.video={video}"))
    assert load_job(job_file, parsed).template.source == video


def test_an_empty_set_of_a_required_key_says_it_is_missing(make_job):
    result = _invoke("run", make_job(), "-q", "--set", "model.path=")
    assert result.exit_code == 2 and "model.path: missing" in _one_line(result)


# --- composer init, the help, the sweep's size -----------------------------------------------------------------


@pytest.mark.parametrize("example", ["ultralight", "seed001", "restore", "demo"])
def test_init_writes_a_commented_job_file_that_loads(tmp_path, example):
    result = _invoke("init", tmp_path / "job", "--example", example)
    assert result.exit_code == 0, result.output
    job_file = tmp_path / "job" / "job.toml"
    assert job_file.read_text().startswith("#")
    assert load_job(job_file).template.source.parent == job_file.parent


def test_init_never_overwrites_a_job_file(tmp_path):
    (tmp_path / "job.toml").write_text("mine")
    result = _invoke("init", tmp_path)
    assert result.exit_code == 2 and "exists already" in _one_line(result)
    assert (tmp_path / "job.toml").read_text() == "mine"


def test_the_help_names_no_folder_a_pip_user_lacks():
    result = _invoke("--help")
    assert result.exit_code == 0 and "configs/" not in result.output and "composer init" in result.output


def test_the_sweep_says_how_many_renders_it_will_run_before_it_starts(make_job):
    result = _invoke("sweep", make_job(), "--modes", "pipeline", "--batch", "1,2", "--workers", "1", "--repeats",
                     "2", "--confirm", "1", "-n", "4")
    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    assert "2 points x 2 repeats = 4 renders" in first and "2 more to confirm" in first


# --- the demo says which provider runs the model once ------------------------------------------------------------


def test_the_demo_says_once_which_provider_runs_the_model(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent.parent)}
    result = subprocess.run([sys.executable, "-m", "composer", "demo", "--out", str(tmp_path / "demo"), "-n", "6",
                             "--size", "64x64"], capture_output=True, text=True, env=env, timeout=100)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("runs on CPUExecutionProvider") == 1, result.stderr
    assert "features: encoding speech.wav with encoder.onnx" in result.stderr


def test_an_empty_set_of_an_unknown_key_is_still_refused(make_job):
    result = _invoke("run", make_job(), "-q", "--set", "model.typo=")
    assert result.exit_code == 2 and "model.typo: unknown key" in _one_line(result)
