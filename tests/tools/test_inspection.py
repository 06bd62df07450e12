"""Model descriptions and the fit check of a model against a job."""

from __future__ import annotations

import pytest

from composer.config.job import load_job
from composer.errors import JobError, ModelError
from composer.model.zoo import build_elementwise, build_unet
from composer.tools.inspection import DOES_NOT_FIT, check_fit, describe_model, shape_text


def test_describe_elementwise_with_a_dynamic_batch(tmp_path):
    path = build_elementwise(tmp_path / "m.onnx", window=20, in_channels=6, feature_shape=(4, 5))
    text = describe_model(path)
    lines = text.splitlines()
    assert lines[0] == str(path)
    assert lines[1] == "inputs:"
    assert lines[2].split() == ["image", "[batch,", "6,", "20,", "20]", "float32"]
    assert lines[3].split() == ["audio", "[batch,", "4,", "5]", "float32"]
    assert lines[4] == "outputs:"
    assert lines[5].split() == ["output", "[batch,", "3,", "20,", "20]", "float32"]


def test_describe_unet_with_a_fixed_batch(tmp_path):
    path = build_unet(tmp_path / "u.onnx", window=32, base=4, feature_shape=(8, 2, 2), batch=2)
    text = describe_model(path)
    assert "image  [2, 6, 32, 32]  float32" in text
    assert "audio  [2, 8, 2, 2]" in text
    assert "output  [2, 3, 32, 32]" in text


def test_shape_text_names_dynamic_dimensions():
    assert shape_text(["batch", 3, None, -1, 0, ""]) == "[batch, 3, ?, ?, ?, ?]"


def test_describe_a_missing_or_broken_model(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        describe_model(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load the model"):
        describe_model(broken)


def test_a_fitting_job(make_job):
    lines = check_fit(load_job(make_job()))
    text = "\n".join(lines)
    assert not any(line.startswith(DOES_NOT_FIT) for line in lines)
    assert "image input: image [batch, 6, 20, 20]" in text
    assert "feature input: audio [batch, 20] takes a window of 4" in text
    assert "batch: dynamic" in text
    assert "model window: 20 x 20, crop - 2 * border = 24 - 2 * 2 = 20" in text
    assert lines[-1].startswith("fits: model.onnx")


def test_a_fixed_batch_without_features(make_job):
    lines = check_fit(load_job(make_job(outputs=None, model_batch=3)))
    assert "feature input: none (the job has no [features])" in lines
    assert any(line.startswith("batch: fixed at 3") for line in lines)


def test_a_wrong_crop_does_not_fit(make_job):
    job = load_job(make_job(), {"model": {"crop": 32}})
    lines = check_fit(job)
    assert len(lines) == 1
    assert lines[0].startswith(DOES_NOT_FIT)
    assert "crop - 2 * border = 28" in lines[0]
    assert "model.onnx" in lines[0]


def test_a_wrong_channel_count_does_not_fit(make_job):
    lines = check_fit(load_job(make_job(), {"model": {"inputs": ["crop"]}}))
    assert len(lines) == 1 and lines[0].startswith(DOES_NOT_FIT) and "3 channels" in lines[0]


def test_bad_job_inputs_are_still_job_errors(make_job):
    job_path = make_job()
    (job_path.parent / "rects.json").write_text("[]")
    with pytest.raises(JobError, match="no rectangle for frame 0"):
        check_fit(load_job(job_path))
