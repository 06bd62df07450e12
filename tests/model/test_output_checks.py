"""The model's outputs are checked (docs/design.md section 9): floats only, and never NaN or inf."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from composer.config.job import ModelSpec
from composer.errors import ModelError
from composer.model.session import Model, NonFiniteOutput
from composer.rendering.layout import frame_seconds, warm_up, zero_batch
from tests.model.faulty import build_faulty

WINDOW = 8


def _model(tmp_path: Path, fault: str, batch: int | None = None) -> Model:
    path = build_faulty(tmp_path / f"{fault}.onnx", fault=fault, window=WINDOW, batch=batch)
    spec = ModelSpec(path=path, crop=WINDOW + 4, border=2, inputs=("crop", "masked"), provider="cpu")
    return Model(spec, feature_row_shape=(1,), window=1)


def _batch(f: list[float]) -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(0).random((len(f), 6, WINDOW, WINDOW), dtype=np.float32)
    return images, np.array(f, np.float32).reshape(-1, 1)


@pytest.mark.parametrize(("fault", "what"), [("nan", "NaN"), ("inf", "inf")])
def test_an_output_that_is_not_finite_names_its_sample(tmp_path, fault, what):
    model = _model(tmp_path, fault)
    with pytest.raises(NonFiniteOutput) as info:
        model.run(*_batch([-1, -1, 0, -1, 0]))
    assert info.value.sample == 2
    message = str(info.value)
    assert f"holds {what} (sample 2 of a batch of 5)" in message and str(tmp_path / f"{fault}.onnx") in message
    assert "\n" not in message
    assert isinstance(info.value, ModelError)


def test_a_finite_output_passes(tmp_path):
    model = _model(tmp_path, "nan")
    out = model.run(*_batch([-1, 2, 0.5]))
    assert out.shape == (3, 3, WINDOW, WINDOW) and np.isfinite(out).all()


def test_the_warm_up_on_zeros_ignores_an_output_that_is_not_finite(tmp_path):
    """The warm-up and timing calls feed zeros, which a model may not be able to take; they are not frames."""
    model = _model(tmp_path, "nan")
    with pytest.raises(NonFiniteOutput):
        model.run(*zero_batch(model, 2))  # f = 0: NaN
    warm_up([model], 2)
    assert frame_seconds(model, 2) > 0  # imported before conftest puts a stub in its place


def test_the_padding_of_a_fixed_batch_is_not_checked(tmp_path):
    model = _model(tmp_path, "nan", batch=4)
    out = model.run(*_batch([-1, -1, -1]))  # the padded fourth row has f = 0, so its output is NaN
    assert out.shape[0] == 3 and np.isfinite(out).all()


def test_samples_are_counted_across_the_parts_of_a_fixed_batch(tmp_path):
    model = _model(tmp_path, "inf", batch=2)
    with pytest.raises(NonFiniteOutput) as info:
        model.run(*_batch([-1, -1, -1, 0, -1]))
    assert info.value.sample == 3


def test_an_integer_output_type_is_refused_at_load(tmp_path):
    with pytest.raises(ModelError) as info:
        _model(tmp_path, "uint8")
    message = str(info.value)
    assert "uint8.onnx" in message and "tensor(uint8)" in message and "float" in message


def test_an_integer_output_is_refused_at_the_first_run_where_the_type_was_not_known(tmp_path):
    model = _model(tmp_path, "nan")

    class Session:  # a session that told nothing useful of its output type at load
        @staticmethod
        def run(names, feed):
            return [np.full((len(feed["image"]), 3, WINDOW, WINDOW), 255, np.uint8)]

    model.session = Session()  # type: ignore[assignment]
    with pytest.raises(ModelError, match=r"nan\.onnx: output 'output' is uint8; composer needs float"):
        model.run(*_batch([-1]))


def test_a_float64_output_is_a_float(tmp_path):
    double, single = _model(tmp_path, "double"), _model(tmp_path, "nan")
    batch = _batch([-1, -1])
    out = double.run(*batch)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, single.run(*batch), rtol=1e-6)
