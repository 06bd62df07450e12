"""ONNX Runtime's own log stays off stderr: composer says what went wrong, in one line of its own."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from composer.config.job import ModelSpec
from composer.errors import ModelError
from composer.model import session as session_module
from composer.model.session import Model
from tests.model.faulty import build_faulty

WINDOW = 8


def _spec(path: Path, provider: str = "cpu") -> ModelSpec:
    return ModelSpec(path=path, crop=WINDOW + 4, border=2, inputs=("crop", "masked"), provider=provider)


def test_a_failing_run_leaves_stderr_to_composer(tmp_path, capfd):
    """ONNX Runtime logged the failing node in colour on stderr (fd 2) before composer's own message."""
    model = Model(_spec(build_faulty(tmp_path / "fails.onnx", fault="fails", window=WINDOW)),
                  feature_row_shape=(1,), window=1)
    images, features = np.zeros((1, 6, WINDOW, WINDOW), np.float32), np.ones((1, 1), np.float32)
    with pytest.raises(ModelError, match=r"fails\.onnx: inference failed: "):
        model.run(images, features)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_a_provider_that_could_not_be_started_is_one_warning(tmp_path, monkeypatch, caplog):
    """ONNX Runtime's reason is no longer printed, so composer says that the model fell back to the CPU (with
    provider = "auto"; a provider asked for by name is an error then: tests/model/test_providers.py)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA may start here; the test asks for it where it cannot")
    path = build_faulty(tmp_path / "m.onnx", fault="nan", window=WINDOW)
    monkeypatch.setattr(session_module, "choose_providers",
                        lambda wanted, available: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with warnings.catch_warnings(), caplog.at_level("WARNING", logger="composer"):
        warnings.simplefilter("ignore")  # this CPU build's own complaint about the provider it lacks
        model = Model(_spec(path, provider="auto"), feature_row_shape=(1,), window=1)
        Model(_spec(path, provider="auto"), feature_row_shape=(1,), window=1)  # a second lane: no second line
    assert model.provider == "CPUExecutionProvider"
    assert [r.getMessage() for r in caplog.records] == [
        "model.provider = 'auto': CUDAExecutionProvider could not be started, so model m.onnx runs on "
        "CPUExecutionProvider (--debug shows ONNX Runtime's reason)"
    ]
