"""A GPU machine for tests on a CPU: ONNX Runtime lists TensorRT and CUDA, and each session is a real CPU session
that reports the providers a test gives it and records the options it was created with and its calls."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from composer.model import providers

CUDA, TRT, CPU = "CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"
real_session = ort.InferenceSession


class FakeGpu:
    """Stands in for ``ort.InferenceSession``: a CPU session that says it runs on ``runs_on``."""

    def __init__(self, runs_on: list[str]) -> None:
        self.runs_on, self.created, self.calls = runs_on, [], []

    def __call__(self, path, sess_options=None, providers=None):
        self.created.append(providers)
        inner = real_session(path, sess_options=sess_options, providers=[CPU])
        fake = self

        class Session:
            def get_providers(self):
                return list(fake.runs_on)

            def run(self, names, feed):
                fake.calls.append({k: (v.shape, v.dtype) for k, v in feed.items()})
                return inner.run(names, feed)

            def __getattr__(self, name):
                return getattr(inner, name)

        return Session()


def install(monkeypatch: pytest.MonkeyPatch) -> FakeGpu:
    """Make this a machine whose onnxruntime lists TensorRT and CUDA; sessions run on what ``runs_on`` says."""
    fake = FakeGpu([CUDA, CPU])
    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", fake)
    providers._fell_back.cache_clear()
    return fake


