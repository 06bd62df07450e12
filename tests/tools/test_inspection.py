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


# --- a job whose features come from an audio encoder -----------------------------------------------------------


def _audio_job(demo_video_job, tmp_path, **features):
    import shutil

    root = tmp_path / "job"
    shutil.copytree(demo_video_job.parent, root, ignore=shutil.ignore_patterns("out"))
    overrides = {"output": {"video": str(tmp_path / "out" / "v.mp4"), "frames": ""}, "features": features}
    return load_job(root / "job.toml", {k: v for k, v in overrides.items() if v})


def test_the_fit_check_describes_the_encoder(demo_video_job, tmp_path):
    lines = check_fit(_audio_job(demo_video_job, tmp_path))
    assert lines[0].startswith("encoder: encoder.onnx takes audio [1, samples] PCM at 16000 Hz")
    assert "2 rows a frame at 25 fps" in lines[0] and "[2, 512]" in lines[0] and "8192 values" in lines[0]
    assert lines[-1].startswith("fits:")


def test_an_encoder_that_does_not_take_pcm_does_not_fit(demo_video_job, tmp_path):
    job = _audio_job(demo_video_job, tmp_path, encoder=str(demo_video_job.parent / "model.onnx"))
    lines = check_fit(job)
    assert len(lines) == 1 and lines[0].startswith(DOES_NOT_FIT) and "mono PCM [1, S]" in lines[0]


def test_rows_that_do_not_make_whole_frames_do_not_fit(demo_video_job, tmp_path):
    lines = check_fit(_audio_job(demo_video_job, tmp_path, rows_per_second=40))
    assert len(lines) == 1 and lines[0].startswith(DOES_NOT_FIT) and "40 encoder rows a second at 25 fps" in lines[0]


def test_rows_of_the_wrong_width_do_not_fit_the_model(demo_video_job, tmp_path):
    from composer.model.zoo import build_audio_encoder

    encoder = build_audio_encoder(tmp_path / "narrow.onnx", dim=256, channels=4)
    lines = check_fit(_audio_job(demo_video_job, tmp_path, encoder=str(encoder)))
    assert lines[0].startswith("encoder:") and "[2, 256]" in lines[0]
    assert lines[-1].startswith(DOES_NOT_FIT) and "[32, 16, 16]" in lines[-1]
