"""Checks that fail early and honestly, seen from the command line: a model's bad output, exit statuses."""

from __future__ import annotations

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
