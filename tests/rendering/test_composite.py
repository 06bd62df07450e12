"""Paste-back (docs/design.md 3.7-3.9) and the model's image input (3.4)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from composer.config.job import CompositeSpec, ModelSpec
from composer.rendering.composite import composite, feather_alpha, prediction_to_bgr
from composer.rendering.prepare import crop_region, fill_image, model_image

# --- feather_alpha ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height", "feather"), [(20, 12, 3), (9, 31, 1), (40, 40, 7), (5, 3, 4)])
def test_feather_alpha_shape_edges_and_interior(width, height, feather):
    alpha = feather_alpha(width, height, feather)
    assert alpha.shape == (height, width, 1) and alpha.dtype == np.float32
    a = alpha[..., 0]
    edge = np.float32(1) / np.float32(feather + 1)
    assert np.allclose(a[0, :], edge) and np.allclose(a[-1, :], edge)
    assert np.allclose(a[:, 0], edge) and np.allclose(a[:, -1], edge)
    assert np.all((a > 0) & (a <= 1))
    inner = a[feather : height - feather, feather : width - feather]
    assert np.all(inner == 1.0)
    if inner.size == 0:  # too small for an interior: nothing reaches 1
        assert a.max() < 1


def test_feather_alpha_values_follow_the_distance_to_the_edge():
    a = feather_alpha(12, 10, 3)[..., 0]
    assert a[5, :].tolist() == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25])
    assert a[:, 6].tolist() == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1, 1, 0.75, 0.5, 0.25])
    assert a[1, 1] == pytest.approx(0.5) and a[2, 8] == pytest.approx(0.75)  # the nearest edge decides


@pytest.mark.parametrize(("width", "height", "feather"), [(20, 12, 3), (11, 11, 5), (7, 30, 2)])
def test_feather_alpha_is_monotone_towards_the_centre_and_symmetric(width, height, feather):
    a = feather_alpha(width, height, feather)[..., 0]
    top, left = a[: (height + 1) // 2], a[:, : (width + 1) // 2]
    assert np.all(np.diff(top, axis=0) >= 0)
    assert np.all(np.diff(left, axis=1) >= 0)
    np.testing.assert_array_equal(a, a[::-1, :])
    np.testing.assert_array_equal(a, a[:, ::-1])
    if width == height:
        np.testing.assert_array_equal(a, a.T)


@pytest.mark.parametrize(("width", "height"), [(1, 1), (8, 5), (33, 17)])
def test_feather_zero_is_all_ones(width, height):
    alpha = feather_alpha(width, height, 0)
    assert alpha.shape == (height, width, 1)
    assert np.all(alpha == 1.0)


def test_feather_alpha_is_read_only():
    # it is cached and shared between frames: nobody may change it
    with pytest.raises(ValueError):
        feather_alpha(6, 6, 2)[0, 0, 0] = 0.5


# --- prediction_to_bgr --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (0.0, 0),
        (1.0, 255),
        (-0.3, 0),
        (-1e9, 0),
        (1.0001, 255),
        (7.0, 255),
        (1e9, 255),
        ((10.5 - 0.01) / 255, 10),
        ((10.5 + 0.01) / 255, 11),
        ((0.5 - 0.01) / 255, 0),
        ((0.5 + 0.01) / 255, 1),
        ((254.5 - 0.01) / 255, 254),
        ((254.5 + 0.01) / 255, 255),
        (128 / 255, 128),
    ],
)
def test_prediction_rounding_and_clipping(value, level):
    prediction = np.full((3, 2, 2), value, dtype=np.float32)
    got = prediction_to_bgr(prediction, "bgr")
    assert got.dtype == np.uint8 and got.shape == (2, 2, 3)
    assert np.all(got == level)


def test_prediction_matches_the_formula():
    prediction = np.random.default_rng(0).uniform(-0.2, 1.2, (3, 9, 7)).astype(np.float32)
    expected = np.rint(np.clip(prediction * np.float32(255), 0, 255)).astype(np.uint8).transpose(1, 2, 0)
    np.testing.assert_array_equal(prediction_to_bgr(prediction, "bgr"), expected)


@pytest.mark.parametrize("color", ["bgr", "rgb"])
def test_prediction_into_a_view_of_a_larger_array(color):
    prediction = np.random.default_rng(4).uniform(-0.2, 1.2, (3, 9, 7)).astype(np.float32)
    canvas = np.full((13, 11, 3), 99, np.uint8)
    view = canvas[2:11, 3:10]  # not contiguous, as the crop's window is
    assert prediction_to_bgr(prediction, color, out=view) is view
    np.testing.assert_array_equal(view, prediction_to_bgr(prediction, color))
    outside = np.ones(canvas.shape[:2], bool)
    outside[2:11, 3:10] = False
    assert np.all(canvas[outside] == 99)


def test_prediction_of_another_float_type_is_scaled_in_float32():
    prediction = np.random.default_rng(5).uniform(-0.2, 1.2, (3, 6, 6)).astype(np.float16)
    expected = np.rint(np.clip(prediction.astype(np.float32) * np.float32(255), 0, 255)).astype(np.uint8)
    np.testing.assert_array_equal(prediction_to_bgr(prediction, "bgr"), expected.transpose(1, 2, 0))


def test_prediction_channel_order():
    prediction = np.zeros((3, 4, 5), np.float32)
    prediction[0], prediction[1], prediction[2] = 10 / 255, 20 / 255, 30 / 255
    bgr = prediction_to_bgr(prediction, "bgr")
    assert bgr.shape == (4, 5, 3)
    assert bgr[0, 0].tolist() == [10, 20, 30]
    rgb_model = prediction_to_bgr(prediction, "rgb")  # the model returned R, G, B: flip to B, G, R
    assert rgb_model[0, 0].tolist() == [30, 20, 10]
    assert np.all(rgb_model[..., 0] == 30) and np.all(rgb_model[..., 2] == 10)


def test_prediction_layout_is_hwc():
    prediction = np.zeros((3, 4, 5), np.float32)
    prediction[:, 1, 3] = 1.0
    got = prediction_to_bgr(prediction, "bgr")
    assert got[1, 3].tolist() == [255, 255, 255]
    assert np.count_nonzero(got) == 3


# --- composite ----------------------------------------------------------------------------------------------

SPEC = ModelSpec(path=Path("m.onnx"), crop=24, border=2, inputs=("crop", "masked"), mask=(2, 10, 16, 8))


def _inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    rect = (5, 7, 36, 30)
    crop = crop_region(frame, rect, SPEC)
    prediction = rng.random((3, SPEC.window, SPEC.window), dtype=np.float32)
    return frame, crop, prediction, rect


def _outside(image: np.ndarray, rect) -> np.ndarray:
    x1, y1, x2, y2 = rect
    mask = np.ones(image.shape[:2], bool)
    mask[y1:y2, x1:x2] = False
    return image[mask]


@pytest.mark.parametrize("blend", [CompositeSpec("hard", 0), CompositeSpec("feather", 4)])
def test_composite_leaves_outside_and_arguments_untouched(blend):
    frame, crop, prediction, rect = _inputs()
    frame_before, crop_before, prediction_before = frame.copy(), crop.copy(), prediction.copy()
    out = composite(frame, crop, prediction, rect, SPEC, blend)
    np.testing.assert_array_equal(frame, frame_before)
    np.testing.assert_array_equal(crop, crop_before)
    np.testing.assert_array_equal(prediction, prediction_before)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert not np.shares_memory(out, frame)
    np.testing.assert_array_equal(_outside(out, rect), _outside(frame, rect))
    x1, y1, x2, y2 = rect
    assert not np.array_equal(out[y1:y2, x1:x2], frame[y1:y2, x1:x2])


def test_hard_composite_follows_the_reference_steps():
    frame, crop, prediction, rect = _inputs(1)
    x1, y1, x2, y2 = rect
    b = SPEC.border
    patched = crop.copy()
    patched[b:-b, b:-b] = prediction_to_bgr(prediction, "bgr")
    expected = frame.copy()
    expected[y1:y2, x1:x2] = cv2.resize(patched, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(composite(frame, crop, prediction, rect, SPEC, CompositeSpec()), expected)


def test_composite_into_a_buffer():
    frame, crop, prediction, rect = _inputs(2)
    out = np.full_like(frame, 7)
    got = composite(frame, crop, prediction, rect, SPEC, CompositeSpec(), out=out)
    assert got is out
    np.testing.assert_array_equal(out, composite(frame, crop, prediction, rect, SPEC, CompositeSpec()))


def test_feather_composite_mixes_at_the_edges_only():
    frame, crop, prediction, rect = _inputs(3)
    x1, y1, x2, y2 = rect
    hard = composite(frame, crop, prediction, rect, SPEC, CompositeSpec())
    soft = composite(frame, crop, prediction, rect, SPEC, CompositeSpec("feather", 3))
    inner = (slice(y1 + 3, y2 - 3), slice(x1 + 3, x2 - 3))
    np.testing.assert_array_equal(soft[inner], hard[inner])
    alpha = feather_alpha(x2 - x1, y2 - y1, 3)
    region = frame[y1:y2, x1:x2].astype(np.float32)
    expected = np.rint(region + (hard[y1:y2, x1:x2].astype(np.float32) - region) * alpha).astype(np.uint8)
    np.testing.assert_array_equal(soft[y1:y2, x1:x2], expected)
    assert not np.array_equal(soft[y1, x1:x2], hard[y1, x1:x2])


# --- fill_image (composer/prepare.py) -----------------------------------------------------------------------


def _crop(spec: ModelSpec, seed: int = 0) -> np.ndarray:
    # values 1..255 so a zeroed pixel cannot be mistaken for a dark one
    return np.random.default_rng(seed).integers(1, 256, (spec.crop, spec.crop, 3), dtype=np.uint8)


@pytest.mark.parametrize("color", ["bgr", "rgb"])
def test_fill_image_groups_and_mask(color):
    spec = ModelSpec(
        path=Path("m.onnx"), crop=24, border=2, inputs=("crop", "masked"), mask=(2, 10, 16, 8), color=color
    )
    crop = _crop(spec)
    out = np.full((spec.image_channels, spec.window, spec.window), -1, np.float32)
    got = fill_image(crop, spec, out)
    assert got is out and got.shape == (6, 20, 20)
    window = crop[2:22, 2:22]
    if color == "rgb":
        window = window[..., ::-1]
    expected = window.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(got[0:3], expected)  # "crop": nothing zeroed
    assert np.count_nonzero(got[0:3] == 0) == 0
    zeroed = np.zeros((20, 20), bool)
    zeroed[10:18, 2:18] = True  # rows y..y+h-1, columns x..x+w-1
    assert np.all(got[3:6][:, zeroed] == 0)
    np.testing.assert_array_equal(got[3:6][:, ~zeroed], expected[:, ~zeroed])


def test_fill_image_follows_the_order_of_inputs():
    spec = ModelSpec(path=Path("m.onnx"), crop=16, border=0, inputs=("masked", "crop"), mask=(0, 0, 4, 2))
    got = model_image(_crop(spec, 1), spec)
    assert np.all(got[0:3, 0:2, 0:4] == 0)
    assert np.count_nonzero(got[3:6] == 0) == 0


def test_fill_image_without_mask_and_single_group():
    spec = ModelSpec(path=Path("m.onnx"), crop=10, border=1, inputs=("masked",))
    crop = _crop(spec, 2)
    got = model_image(crop, spec)
    assert got.shape == (3, 8, 8) and got.dtype == np.float32
    np.testing.assert_array_equal(got, crop[1:9, 1:9].transpose(2, 0, 1).astype(np.float32) / np.float32(255))


def test_fill_image_extremes():
    spec = ModelSpec(path=Path("m.onnx"), crop=6, border=1, inputs=("crop",))
    crop = np.zeros((6, 6, 3), np.uint8)
    crop[2, 3] = 255
    got = model_image(crop, spec)
    assert got.max() == 1.0 and got.min() == 0.0
    assert np.all(got[:, 1, 2] == 1.0)
