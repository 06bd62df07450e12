"""The model adapter: inputs matched to the job (docs/design.md 3.5-3.6), providers, fixed batches, load errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from composer.config.job import ModelSpec
from composer.errors import ModelError
from composer.model.providers import choose_providers
from composer.model.session import Model
from composer.model.signature import ModelInputs, match_inputs
from composer.model.zoo import build_elementwise

MODEL = Path("/models/m.onnx")
# crop 24, border 2: the model window is 20 x 20
SPEC = ModelSpec(path=MODEL, crop=24, border=2, inputs=("crop", "masked"))


def _match(inputs, spec=SPEC, rows=None, window=1):
    return match_inputs(MODEL, inputs, spec, rows, window)


@pytest.mark.parametrize(
    "inputs",
    [
        [("image", ["batch", 6, 20, 20]), ("audio", ["batch", 8, 5])],
        [("audio", ["batch", 8, 5]), ("image", ["batch", 6, 20, 20])],
        [("audio", [None, 40]), ("face", [None, 6, 20, 20])],
        [("x", ["N", 6, "H", "W"]), ("y", [None, 2, 4, 5])],  # dynamic spatial dims are accepted
        [("a", [-1, 8, 5]), ("b", [-1, 6, 20, 20])],  # negative dims are dynamic too
    ],
)
def test_image_input_found_by_channels_in_any_order(inputs):
    image = next(n for n, s in inputs if len(s) == 4 and s[1] == 6)
    feature = next(n for n, _ in inputs if n != image)
    got = _match(inputs, rows=(5,), window=8)
    assert got == ModelInputs(
        image=image,
        image_shape=(6, 20, 20),
        feature=feature,
        feature_shape=tuple(next(s for n, s in inputs if n == feature)[1:]),
        batch=None,
    )


def test_single_group_takes_three_channels():
    spec = ModelSpec(path=MODEL, crop=24, border=2, inputs=("crop",))
    got = _match([("image", ["batch", 3, 20, 20])], spec=spec)
    assert got == ModelInputs(
        image="image", image_shape=(3, 20, 20), feature=None, feature_shape=None, batch=None
    )


def test_channel_count_decides_between_two_rank_4_inputs():
    inputs = [("mel", ["b", 3, 16, 16]), ("img", ["b", 6, 20, 20])]
    got = _match(inputs, rows=(3, 16, 16), window=1)
    assert (got.image, got.feature, got.feature_shape) == ("img", "mel", (3, 16, 16))


@pytest.mark.parametrize(
    "inputs",
    [
        [("image", ["batch", 3, 20, 20])],  # three channels, the job stacks six
        [("image", ["batch", 6, 20])],  # rank 3
        [("image", ["batch", "C", 20, 20])],  # unknown channel count
        [("a", ["batch", 6, 20, 20]), ("b", ["batch", 6, 20, 20])],  # ambiguous
        [],
    ],
)
def test_no_single_image_input(inputs):
    with pytest.raises(ModelError, match="6 channels"):
        _match(inputs)


@pytest.mark.parametrize(
    ("shape", "axis", "size"),
    [
        (["batch", 6, 32, 20], "height", 32),
        (["batch", 6, 20, 16], "width", 16),
        ([1, 6, 320, 320], "height", 320),
    ],
)
def test_wrong_spatial_size_states_both_sizes(shape, axis, size):
    with pytest.raises(ModelError) as info:
        _match([("image", shape)])
    message = str(info.value)
    assert f"{axis} {size}" in message and "= 20" in message and str(MODEL) in message


@pytest.mark.parametrize(
    ("feature", "rows", "window", "shape_text", "counts"),
    [
        (["batch", 32, 16, 16], (5,), 8, "[32, 16, 16]", ("8192", "40")),
        (["batch", 39], (5,), 8, "[39]", ("39", "40")),
        (["batch", 8, 5], (4, 2), 4, "[8, 5]", ("40", "32")),
    ],
)
def test_feature_element_count_mismatch_states_both_shapes(feature, rows, window, shape_text, counts):
    with pytest.raises(ModelError) as info:
        _match([("image", ["batch", 6, 20, 20]), ("audio", feature)], rows=rows, window=window)
    message = str(info.value)
    assert shape_text in message and str(list(rows)) in message and f"window of {window}" in message
    assert all(c in message for c in counts)


def test_feature_window_of_multi_dimensional_rows_matches_by_element_count():
    got = _match(
        [("image", ["batch", 6, 20, 20]), ("audio", ["batch", 32, 16, 16])], rows=(16, 512), window=1
    )
    assert got.feature_shape == (32, 16, 16)
    got = _match([("image", ["batch", 6, 20, 20]), ("audio", ["batch", 8, 2, 4])], rows=(8,), window=8)
    assert got.feature_shape == (8, 2, 4)


def test_feature_input_needs_fixed_sizes():
    with pytest.raises(ModelError, match="fixed sizes"):
        _match([("image", ["batch", 6, 20, 20]), ("audio", ["batch", "T", 5])], rows=(5,), window=8)


def test_features_given_but_model_has_one_input():
    with pytest.raises(ModelError) as info:
        _match([("image", ["batch", 6, 20, 20])], rows=(5,), window=8)
    assert "feature input" in str(info.value) and str(MODEL) in str(info.value)


def test_model_has_feature_input_but_job_has_none():
    with pytest.raises(ModelError) as info:
        _match([("image", ["batch", 6, 20, 20]), ("audio", ["batch", 8, 5])])
    assert "audio" in str(info.value) and "[features]" in str(info.value)


def test_model_with_two_other_inputs():
    inputs = [("image", ["batch", 6, 20, 20]), ("audio", ["batch", 40]), ("pose", ["batch", 3])]
    with pytest.raises(ModelError, match="one feature input"):
        _match(inputs, rows=(5,), window=8)


@pytest.mark.parametrize(
    ("inputs", "rows", "batch"),
    [
        ([("image", [4, 6, 20, 20])], None, 4),
        ([("image", [1, 6, 20, 20])], None, 1),
        ([("image", [4, 6, 20, 20]), ("audio", [4, 8, 5])], (5,), 4),
        ([("image", ["batch", 6, 20, 20]), ("audio", [2, 8, 5])], (5,), 2),
        ([("image", [None, 6, 20, 20]), ("audio", ["b", 8, 5])], (5,), None),
    ],
)
def test_fixed_batch_detected(inputs, rows, batch):
    assert _match(inputs, rows=rows, window=8).batch == batch


def test_inputs_disagreeing_on_the_batch():
    with pytest.raises(ModelError, match="batch"):
        _match([("image", [4, 6, 20, 20]), ("audio", [2, 8, 5])], rows=(5,), window=8)


# --- providers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "available", "expected"),
    [
        ("auto", ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        ("auto", ["AzureExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (
            "auto",
            ["CPUExecutionProvider", "CUDAExecutionProvider"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (
            "auto",
            ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"],
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (
            "cuda",
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
    ],
)
def test_choose_providers(wanted, available, expected):
    assert choose_providers(wanted, available) == expected


@pytest.mark.parametrize("wanted", ["cuda", "tensorrt"])
def test_explicit_provider_unavailable(wanted):
    with pytest.raises(ModelError) as info:
        choose_providers(wanted, ["CPUExecutionProvider"])
    assert repr(wanted) in str(info.value) and "CPUExecutionProvider" in str(info.value)


# --- a real session -----------------------------------------------------------------------------------------


def _spec(path: Path) -> ModelSpec:
    return ModelSpec(path=path, crop=12, border=2, inputs=("crop", "masked"), provider="cpu")


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 6, 8, 8), dtype=np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    fixed = build_elementwise(root / "fixed.onnx", window=8, in_channels=6, batch=4, seed=3)
    dynamic = build_elementwise(root / "dynamic.onnx", window=8, in_channels=6, batch=None, seed=3)
    return Model(_spec(fixed)), Model(_spec(dynamic))


def test_fixed_batch_model_pads_a_partial_batch(models):
    fixed, dynamic = models
    assert fixed.inputs.batch == 4 and dynamic.inputs.batch is None
    assert fixed.batch_size(8) == 4 and dynamic.batch_size(8) == 8
    images = _images(3)
    got = fixed.run(images)
    assert got.shape == (3, 3, 8, 8) and got.dtype == np.float32
    np.testing.assert_array_equal(got, dynamic.run(images))
    np.testing.assert_array_equal(got, fixed.run(np.concatenate([images, _images(1, seed=9)]))[:3])
    assert not np.array_equal(got[0], got[1])  # the samples really differ


@pytest.mark.parametrize("n", [1, 4])
def test_fixed_and_dynamic_agree(models, n):
    fixed, dynamic = models
    images = _images(n, seed=n)
    np.testing.assert_array_equal(fixed.run(images), dynamic.run(images))


def test_fixed_batch_model_given_more_than_its_batch(models, monkeypatch):
    """Five samples for a model fixed at batch 4: two calls of exactly 4 (the second padded), and the five
    predictions a dynamic model gives for them, in order."""
    fixed, dynamic = models
    shapes = []
    session = fixed.session

    class Recording:
        def run(self, names, feed):
            shapes.append(next(iter(feed.values())).shape)
            return session.run(names, feed)

    monkeypatch.setattr(fixed, "session", Recording())
    images = _images(5, seed=5)
    got = fixed.run(images)
    assert shapes == [(4, 6, 8, 8), (4, 6, 8, 8)]
    assert got.shape == (5, 3, 8, 8)
    np.testing.assert_array_equal(got, dynamic.run(images))


def test_model_with_features(tmp_path):
    path = build_elementwise(tmp_path / "m.onnx", window=8, in_channels=6, feature_shape=(4, 5), seed=1)
    model = Model(_spec(path), feature_row_shape=(5,), window=4)
    assert model.inputs.feature == "audio" and model.inputs.feature_shape == (4, 5)
    images = np.repeat(_images(1), 2, axis=0)
    features = np.zeros((2, 4, 5), np.float32)
    features[1, 0, 0] = 3.0  # the model adds d * (first feature element)
    got = model.run(images, features)
    assert got.shape == (2, 3, 8, 8)
    assert np.all(got[1] > got[0])


def test_model_checked_against_the_job_when_loaded(tmp_path):
    path = build_elementwise(tmp_path / "m.onnx", window=8, in_channels=6, seed=1)
    with pytest.raises(ModelError, match="= 10"):
        Model(ModelSpec(path=path, crop=14, border=2, inputs=("crop", "masked"), provider="cpu"))


def test_model_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\x00\x01not a protobuf\xff" * 64)
    with pytest.raises(ModelError) as info:
        Model(_spec(path))
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="nothere.onnx"):
        Model(_spec(tmp_path / "nothere.onnx"))
