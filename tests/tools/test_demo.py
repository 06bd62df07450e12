"""Tests of composer.tools.demo: the demo inputs are complete, consistent and decodable."""

from __future__ import annotations

import json
import sys
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort
import pytest

from composer.errors import JobError, OutputError
from composer.tools.demo import make_demo_assets

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

FRAMES = 12
WIDTH, HEIGHT = 128, 96


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_assets(tmp_path_factory.mktemp("demo"), frames=FRAMES, size=(WIDTH, HEIGHT))


def test_writes_every_file(demo: Path) -> None:
    assert demo.name == "job.toml"
    names = {"job.toml", "template.mp4", "rects.json", "encoder.onnx", "speech.wav", "model.onnx"}
    assert names <= {p.name for p in demo.parent.iterdir()}


def test_video_decodes_to_the_template_frames(demo: Path) -> None:
    with av.open(str(demo.parent / "template.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 25
        frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(stream)]
    assert len(frames) == FRAMES  # min(frames, 100)
    assert all(frame.shape == (HEIGHT, WIDTH, 3) for frame in frames)
    assert frames[0].std() > 10  # something is drawn


def test_rects_lie_inside_the_frame(demo: Path) -> None:
    rects = json.loads((demo.parent / "rects.json").read_text())
    assert len(rects) == FRAMES
    for x1, y1, x2, y2 in rects:
        assert all(isinstance(v, int) for v in (x1, y1, x2, y2))
        assert 0 <= x1 < x2 <= WIDTH and 0 <= y1 < y2 <= HEIGHT
        assert abs((x2 - x1) - 0.25 * HEIGHT) <= 1 and abs((y2 - y1) - 0.25 * HEIGHT) <= 1


def test_the_encoder_turns_the_speech_into_two_rows_a_frame(demo: Path) -> None:
    from composer.config.job import load_job
    from composer.inputs.audio_features import write_features

    job = load_job(demo)
    assert job.features is not None and job.features.audio == demo.parent / "speech.wav"
    assert job.output.audio == demo.parent / "speech.wav"  # the speech the features come from is muxed
    out = demo.parent.parent / "demo-features.npy"
    assert write_features(job.features, Fraction(25), out) == (FRAMES, 2, 512)
    features = np.load(out)
    assert np.isfinite(features).all() and features.std() > 0.1
    # The rows follow the speech: a frame of silence (between syllables) differs from one of voice.
    assert not np.allclose(features[0], features[3])


def test_speech_lasts_as_long_as_the_output(demo: Path) -> None:
    with wave.open(str(demo.parent / "speech.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        assert wav.getnframes() / wav.getframerate() == pytest.approx(FRAMES / 25)


def test_job_file_points_at_the_assets(demo: Path) -> None:
    job = tomllib.loads(demo.read_text())
    assert set(job) == {"template", "features", "model", "output"}
    inputs = [job["template"]["video"], job["template"]["rects"], job["features"]["audio"], job["features"]["encoder"]]
    for name in [*inputs, job["model"]["path"]]:
        assert (demo.parent / name).is_file()
    model = job["model"]
    window = model["crop"] - 2 * model["border"]
    session = ort.InferenceSession(str(demo.parent / model["path"]), providers=["CPUExecutionProvider"])
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert shapes["image"][1:] == [3 * len(model["inputs"]), window, window]
    assert int(np.prod(shapes["audio"][1:])) == job["features"]["window"] * 2 * 512  # frames x rows x values


@pytest.mark.parametrize("size", [(127, 96), (128, 95), (62, 96)])
def test_rejects_bad_sizes(tmp_path: Path, size: tuple[int, int]) -> None:
    with pytest.raises(JobError):
        make_demo_assets(tmp_path, frames=4, size=size)


def test_template_frames_override(tmp_path: Path) -> None:
    job = make_demo_assets(tmp_path, frames=6, size=(64, 64), template_frames=3)
    assert len(json.loads((job.parent / "rects.json").read_text())) == 3


def test_unwritable_folder_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError):
        make_demo_assets(blocker / "demo", frames=4, size=(64, 64))
