"""Tests of composer.model.zoo: the models build, check, load and keep the documented interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from composer.errors import ModelError
from composer.model import zoo

WINDOW = 32
FEATURES = (4, 8, 8)


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feed(batch: int, in_channels: int, feature_shape: tuple[int, ...] | None, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    feed = {"image": rng.random((batch, in_channels, WINDOW, WINDOW), dtype=np.float32)}
    if feature_shape is not None:
        feed["audio"] = rng.normal(size=(batch, *feature_shape)).astype(np.float32)
    return feed


def _build(kind: str, path: Path, **kwargs: object) -> Path:
    if kind == "unet":
        kwargs.setdefault("base", 4)  # the interface does not depend on the width; keep the test fast
    builders = {"unet": zoo.build_unet, "light": zoo.build_light, "elementwise": zoo.build_elementwise}
    return builders[kind](path, window=WINDOW, **kwargs)


@pytest.mark.parametrize("kind", ["unet", "light", "elementwise"])
@pytest.mark.parametrize("batch", [None, 2])
def test_model_interface(tmp_path: Path, kind: str, batch: int | None) -> None:
    path = _build(kind, tmp_path / "m.onnx", in_channels=6, feature_shape=FEATURES, batch=batch)
    assert path == tmp_path / "m.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 17
    assert model.ir_version <= 8
    session = _session(path)
    batch_dim = batch if batch is not None else "batch"
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert inputs == {"image": [batch_dim, 6, WINDOW, WINDOW], "audio": [batch_dim, *FEATURES]}
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("output", [batch_dim, 3, WINDOW, WINDOW])]
    out = session.run(None, _feed(batch or 3, 6, FEATURES))[0]
    assert out.shape == (batch or 3, 3, WINDOW, WINDOW)
    assert out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert out.std() > 0.01


@pytest.mark.parametrize("kind", ["unet", "light", "elementwise"])
def test_model_without_features(tmp_path: Path, kind: str) -> None:
    path = _build(kind, tmp_path / "m.onnx", in_channels=3, feature_shape=None)
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == ["image"]
    out = session.run(None, _feed(2, 3, None))[0]
    assert out.shape == (2, 3, WINDOW, WINDOW)


def test_unet_default_is_the_benchmark_shape(tmp_path: Path) -> None:
    session = _session(zoo.build_unet(tmp_path / "m.onnx"))
    assert [(i.name, i.shape) for i in session.get_inputs()] == [
        ("image", ["batch", 6, 320, 320]),
        ("audio", ["batch", 32, 16, 16]),
    ]
    rng = np.random.default_rng(0)
    feed = {
        "image": rng.random((1, 6, 320, 320), dtype=np.float32),
        "audio": rng.normal(size=(1, 32, 16, 16)).astype(np.float32),
    }
    out = session.run(None, feed)[0]
    assert out.shape == (1, 3, 320, 320)
    # Not saturated: a benchmark model whose output is flat would hide paste-back errors.
    assert out.std() > 0.01 and 0.0 < out.min() and out.max() < 1.0


def test_unet_flattens_features_of_other_ranks(tmp_path: Path) -> None:
    path = zoo.build_unet(tmp_path / "m.onnx", window=WINDOW, feature_shape=(2, 16), base=4)
    out = _session(path).run(None, _feed(1, 6, (2, 16)))[0]
    assert out.shape == (1, 3, WINDOW, WINDOW)


def test_same_seed_same_model(tmp_path: Path) -> None:
    a = zoo.build_light(tmp_path / "a.onnx", window=WINDOW, feature_shape=FEATURES, seed=3)
    b = zoo.build_light(tmp_path / "b.onnx", window=WINDOW, feature_shape=FEATURES, seed=3)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("in_channels", [3, 6])
@pytest.mark.parametrize("feature_shape", [None, FEATURES])
def test_elementwise_is_bit_identical_across_batches(
    tmp_path: Path, in_channels: int, feature_shape: tuple[int, ...] | None
) -> None:
    path = zoo.build_elementwise(
        tmp_path / "e.onnx", window=WINDOW, in_channels=in_channels, feature_shape=feature_shape
    )
    session = _session(path)
    feed = _feed(3, in_channels, feature_shape)
    batched = session.run(None, feed)[0]
    for index in range(3):
        alone = session.run(None, {name: value[index : index + 1] for name, value in feed.items()})[0]
        assert np.array_equal(alone[0], batched[index])


def test_elementwise_uses_the_feature_input(tmp_path: Path) -> None:
    path = zoo.build_elementwise(tmp_path / "e.onnx", window=WINDOW, feature_shape=FEATURES)
    session = _session(path)
    feed = _feed(1, 6, FEATURES)
    before = session.run(None, feed)[0]
    feed["audio"].reshape(-1)[0] += 1.0
    assert not np.array_equal(session.run(None, feed)[0], before)


@pytest.mark.parametrize(
    ("builder", "kwargs"),
    [
        (zoo.build_unet, {"window": 40}),
        (zoo.build_unet, {"window": 32, "batch": 0}),
        (zoo.build_elementwise, {"window": 32, "in_channels": 2}),
        (zoo.build_light, {"window": 0}),
    ],
)
def test_invalid_arguments(tmp_path: Path, builder: object, kwargs: dict) -> None:
    with pytest.raises(ModelError):
        builder(tmp_path / "m.onnx", **kwargs)  # type: ignore[operator]
    assert not (tmp_path / "m.onnx").exists()
