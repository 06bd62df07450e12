"""Checks that fail early and honestly, seen from the command line: a model's bad output, exit statuses."""

from __future__ import annotations

import subprocess
import sys
import wave

import av
import numpy as np
import pytest
from click.testing import CliRunner

from composer.cli.main import main
from tests.conftest import BORDER, CROP
from tests.model.faulty import build_faulty

WINDOW = 4  # feature rows per frame in the factory's job; its rows have 5 values
BAD_FRAME = 13  # output frame 13 shows template frame 1, which has a rectangle


def _faulty_job(make_job, fault: str):
    job_file = make_job(window=WINDOW)
    root = job_file.parent
    features = np.load(root / "features.npy")
    features[:, 0] = -1.0
    features[BAD_FRAME, 0] = 0.0
    np.save(root / "features.npy", features)
    # The window of frame i starts at row i - WINDOW // 2: row i's first value is element (WINDOW // 2) * 5.
    build_faulty(root / "model.onnx", fault=fault, window=CROP - 2 * BORDER, feature_shape=(WINDOW * 5,),
                 probe=WINDOW // 2 * 5)
    return job_file


def _one_line(result) -> str:
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("how", [["--reference"], ["--set", "run.mode=pipeline"], ["--set", "run.mode=segments"]])
@pytest.mark.parametrize(("fault", "what"), [("nan", "NaN"), ("inf", "inf")])
def test_a_frame_whose_prediction_is_not_finite_fails_the_render_naming_it(make_job, fault, what, how):
    job_file = _faulty_job(make_job, fault)
    result = CliRunner().invoke(main, ["run", str(job_file), "-q", *how])
    assert result.exit_code == 1, result.output
    line = _one_line(result)
    assert line.startswith(f"composer: error: infer failed at frame {BAD_FRAME}: ")
    assert f"model.onnx: output 'output' holds {what}" in line


def test_a_model_that_returns_bytes_is_refused_before_the_first_frame(make_job):
    job_file = _faulty_job(make_job, "uint8")
    result = CliRunner().invoke(main, ["run", str(job_file), "-q"])
    assert result.exit_code == 2, result.output
    assert "model.onnx: first output 'output' is tensor(uint8)" in _one_line(result)
    assert not (job_file.parent / "out").exists() or not any((job_file.parent / "out").iterdir())


def _wav(path, samples: np.ndarray):
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(16000)
        file.writeframes(samples.astype(np.int16).tobytes())
    return path


def test_audio_without_samples_is_refused_before_the_first_frame(make_job):
    job_file = make_job(output={"video": "out.mp4", "audio": "empty.wav"})
    empty = _wav(job_file.parent / "empty.wav", np.zeros(0))
    result = CliRunner().invoke(main, ["run", str(job_file), "-q"])
    assert result.exit_code == 2, result.output
    assert _one_line(result) == f"composer: error: {empty}: the audio track has no samples"
    out = job_file.parent / "out"
    assert not (job_file.parent / "out.mp4").exists() and not (out.exists() and list(out.glob("*.png")))


def test_silent_audio_is_one_warning_line_and_is_muxed(make_job, caplog):
    job_file = make_job(output={"video": "out.mp4", "audio": "quiet.wav"})
    quiet = _wav(job_file.parent / "quiet.wav", np.zeros(16000))
    with caplog.at_level("WARNING", logger="composer"):
        result = CliRunner().invoke(main, ["run", str(job_file), "-q"])
    assert result.exit_code == 0, result.output
    silent = [r for r in caplog.records if r.getMessage().startswith(f"{quiet}: the audio track is silent")]
    assert len(silent) == 1
    with av.open(str(job_file.parent / "out.mp4")) as container:
        assert len(container.streams.audio) == 1


def test_onnx_runtime_prints_nothing_before_composers_one_line(make_job):
    """ONNX Runtime's own error line (in colour, on fd 2) came before composer's; checked in a real process."""
    job_file = _faulty_job(make_job, "fails")
    done = subprocess.run([sys.executable, "-m", "composer", "run", str(job_file), "-q", "--set", "run.batch=2"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr  # the warm-up before the first frame fails already
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"composer: error: {job_file.parent / 'model.onnx'}: inference failed: ")


def test_a_reader_that_has_gone_does_not_fail_a_finished_render(make_job):
    """``composer run JOB | head -0``: the summary meets a closed pipe after every frame is written."""
    job_file = make_job()
    with subprocess.Popen([sys.executable, "-m", "composer", "run", str(job_file)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # the reader goes before the summary is printed
        errors = process.stderr.read()
        code = process.wait(timeout=120)
    assert code == 0, errors
    assert "Traceback" not in errors and "error" not in errors and "Exception ignored" not in errors
    assert len(list((job_file.parent / "out").glob("*.png"))) == 23
