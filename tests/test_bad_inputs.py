"""Every bad input a user can give: one line naming the culprit, exit status 2, no traceback, no output."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.model.zoo import build_elementwise
from tests.conftest import BORDER, CROP


def _edit(job_file: Path, old: str, new: str) -> None:
    text = job_file.read_text()
    assert old in text, f"{old!r} not in the job file"
    job_file.write_text(text.replace(old, new))


def _write(relative: str, content: bytes | str):
    def mutate(job_file: Path) -> None:
        path = job_file.parent / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return mutate


def _replace(old: str, new: str):
    return lambda job_file: _edit(job_file, old, new)


def _remove(relative: str):
    def mutate(job_file: Path) -> None:
        path = job_file.parent / relative
        if path.is_dir():
            for child in path.iterdir():
                child.unlink()
        else:
            path.unlink()

    return mutate


def _features(array: np.ndarray):
    return lambda job_file: np.save(job_file.parent / "features.npy", array)


def _rects(boxes):
    return _write("rects.json", json.dumps(boxes))


def _model(**kwargs):
    def mutate(job_file: Path) -> None:
        build_elementwise(job_file.parent / "model.onnx", window=CROP - 2 * BORDER, **kwargs)

    return mutate


def _audio(job_file: Path) -> None:
    (job_file.parent / "speech.wav").write_bytes(b"RIFF not really a wav file")
    _edit(job_file, 'format = "png"', 'format = "png"\nvideo = "out.mp4"\naudio = "speech.wav"')


def _midway_garbage(job_file: Path) -> None:
    (job_file.parent / "template" / "frame_4.png").write_bytes(b"\x89PNG broken")


def _external_data(job_file: Path) -> None:
    import onnx

    path = job_file.parent / "model.onnx"
    proto = onnx.load(str(path))
    tensor = proto.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    path.write_bytes(proto.SerializeToString())


def _unwritable_output(job_file: Path) -> None:
    (job_file.parent / "blocker").write_text("a file where a folder should be")
    _edit(job_file, 'frames = "out"', 'frames = "blocker/out"')


def _short_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(b"\0\0" * 1600)


CASES = [
    # (id, mutation, words the message must contain)
    ("toml-syntax", _write("job.toml", "[template\nvideo = 1"), ["job.toml", "not valid TOML"]),
    ("unknown-key", _replace("[run]", "[run]\nbatchsize = 4"), ["run.batchsize", "unknown key"]),
    ("wrong-type", _replace("[run]", "[run]\nbatch = \"four\""), ["run.batch", "integer"]),
    ("missing-template", _replace('frames = "template"', 'video = "nowhere.mp4"'), ["nowhere.mp4"]),
    ("empty-frames-folder", _remove("template"), ["template"]),
    ("unreadable-frame", _write("template/frame_0.png", b"not a png"), ["frame_0.png"]),
    ("corrupt-video", lambda j: (_write("clip.mp4", b"\0" * 4096)(j), _replace(
        'frames = "template"', 'video = "clip.mp4"')(j)), ["clip.mp4"]),
    ("frame-fails-mid-template", _midway_garbage, ["frame_4.png", "decode"]),
    ("rects-missing", _remove("rects.json"), ["rects.json", "no such"]),
    ("rects-malformed", _write("rects.json", "[[1, 2, 3"), ["rects.json", "JSON"]),
    ("rects-short", _rects([[1, 1, 10, 10]] * 5), ["rects.json", "frame 5"]),
    ("rect-outside", _rects([[1, 1, 10, 10]] * 6 + [[50, 1, 70, 10]]), ["rects.json", "frame 6", "outside"]),
    ("rect-empty", _rects([[5, 5, 5, 10]] + [[1, 1, 10, 10]] * 6), ["rects.json", "frame 0", "empty"]),
    ("features-missing", _remove("features.npy"), ["features.npy", "no such"]),
    ("features-not-array", _write("features.npy", "1, 2, 3"), ["features.npy", "not a .npy"]),
    ("features-nan", _features(np.where(np.arange(23 * 5).reshape(23, 5) == 37, np.nan, 1.0)),
     ["features.npy", "row 7", "NaN"]),
    ("features-inf", _features(np.where(np.arange(23 * 5).reshape(23, 5) == 3, np.inf, 1.0)),
     ["features.npy", "row 0", "infinite"]),
    ("window-does-not-fit", _replace("window = 4", "window = 6"), ["model.onnx", "window of 6 rows"]),
    ("model-missing", _remove("model.onnx"), ["model.onnx", "no such"]),
    ("model-not-onnx", _write("model.onnx", b"\x08\x01garbage" * 10), ["model.onnx", "not an ONNX model"]),
    ("model-inputs-fit-no-rule", _model(in_channels=3, feature_shape=(20,)), ["model.onnx", "6 channels"]),
    ("model-external-data-outside", _external_data, ["model.onnx", "outside the model's folder"]),
    ("output-not-writable", _unwritable_output, ["blocker", "cannot create"]),
    ("audio-unreadable", _audio, ["speech.wav"]),
    ("once-with-more-features", _replace('loop = "pingpong"', 'loop = "once"'),
     ["run.loop", "23 output frames", "7"]),
]


@pytest.mark.parametrize(("mutate", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(make_job, mutate, words):
    job_file = make_job()
    mutate(job_file)
    result = CliRunner().invoke(main, ["run", str(job_file), "-q"])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    message = result.stderr.strip()
    assert message.count("\n") == 0, message
    assert message.startswith("composer: error: ")
    assert "Traceback" not in result.output
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    if "decode" not in words:  # found before the first frame: nothing was written
        assert not (job_file.parent / "out").exists() or not any((job_file.parent / "out").iterdir())


def test_missing_job_file(tmp_path):
    result = CliRunner().invoke(main, ["run", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "nope.toml" in result.stderr and "no such job file" in result.stderr


def test_job_file_is_a_folder(tmp_path):
    result = CliRunner().invoke(main, ["run", str(tmp_path)])
    assert result.exit_code == 2
    assert str(tmp_path) in result.stderr and "cannot read" in result.stderr


def test_debug_shows_the_traceback(make_job):
    job_file = make_job()
    _edit(job_file, "[run]", "[run]\nbatchsize = 4")
    result = CliRunner().invoke(main, ["--debug", "run", str(job_file)])
    assert result.exit_code != 0 and result.exception is not None
