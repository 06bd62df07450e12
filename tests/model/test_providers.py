"""Providers that tell the truth, the options composer hands each provider, fixed shapes on an accelerator, IO
binding and the ONNX Runtime builds installed (docs/gpu.md).

There is no GPU here: ONNX Runtime's ``InferenceSession`` is replaced by a real CPU session that reports the
providers a test gives it, and records the options it was created with and the shapes it was called on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from composer.config.job import ModelSpec
from composer.errors import ModelError
from composer.model import providers, session
from composer.model.providers import check_builds, engine_folder, provider_options
from composer.model.session import Model
from composer.model.zoo import build_elementwise
from tests.model.fake_gpu import CPU, CUDA, TRT, install, real_session

WINDOW = 8
@pytest.fixture
def gpu(monkeypatch):
    """A machine whose onnxruntime lists TensorRT and CUDA; sessions run on what ``gpu.runs_on`` says."""
    return install(monkeypatch)



def _spec(path: Path, **keys) -> ModelSpec:
    return ModelSpec(path=path, crop=WINDOW + 4, border=2, inputs=("crop", "masked"), **keys)


@pytest.fixture
def model_path(tmp_path):
    return build_elementwise(tmp_path / "m.onnx", window=WINDOW, in_channels=6, seed=2)


def _images(n: int) -> np.ndarray:
    return np.random.default_rng(n).random((n, 6, WINDOW, WINDOW), dtype=np.float32)


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_a_gpu_provider_by_name_that_ends_on_the_cpu_is_an_input_error(gpu, model_path, provider):
    gpu.runs_on = [CPU]
    with pytest.raises(ModelError) as info:
        Model(_spec(model_path, provider=provider, io_binding=False))
    message = str(info.value)
    assert info.value.exit_code == 2 and "\n" not in message
    assert f"model.provider = {provider!r}" in message and "runs m.onnx on CPUExecutionProvider" in message


def test_auto_that_ends_on_the_cpu_warns_once_and_runs_as_on_a_cpu(gpu, model_path, caplog):
    gpu.runs_on = [CPU]
    with caplog.at_level(logging.WARNING, logger="composer"):
        lanes = [Model(_spec(model_path)) for _ in range(3)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["model.provider = 'auto': TensorrtExecutionProvider could not be started, so model m.onnx "
                        "runs on CPUExecutionProvider (--debug shows ONNX Runtime's reason)"]
    model = lanes[0]
    assert model.provider == CPU and not model.accelerated
    assert model.call_batch is None and model.bound is None  # the CPU's ways: no padding, no binding
    assert gpu.created[0][0][0] == TRT  # it was asked for


def test_tensorrt_ending_on_cuda_warns_and_runs_accelerated(gpu, model_path, caplog):
    gpu.runs_on = [CUDA, CPU]
    with caplog.at_level(logging.WARNING, logger="composer"):
        model = Model(_spec(model_path, provider="tensorrt", io_binding=False))
    assert model.accelerated and "TensorrtExecutionProvider could not be started" in caplog.text
    assert [p if isinstance(p, str) else p[0] for p in gpu.created[0]] == [TRT, CUDA, CPU]


def test_the_options_handed_to_cuda(gpu, model_path):
    Model(_spec(model_path, provider="cuda", device_id=1, gpu_memory_limit=2**30, io_binding=False))
    assert gpu.created[0] == [
        (CUDA, {"device_id": "1", "cudnn_conv_algo_search": "HEURISTIC", "gpu_mem_limit": str(2**30)}),
        CPU,
    ]


def test_the_options_handed_to_tensorrt(gpu, model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    gpu.runs_on = [TRT, CUDA, CPU]
    Model(_spec(model_path, provider="tensorrt", fp16=True, io_binding=False), batch=8)
    (trt, options), (cuda, cuda_options), cpu = gpu.created[0]
    assert (trt, cuda, cpu) == (TRT, CUDA, CPU) and cuda_options["cudnn_conv_algo_search"] == "HEURISTIC"
    folder = options["trt_engine_cache_path"]
    assert Path(folder).parent == tmp_path / "cache" / "composer" / "tensorrt"
    assert Path(folder).name.endswith(f"-ort{ort.__version__}")
    assert options == {
        "device_id": "0",
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": folder,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": folder,
        "trt_profile_min_shapes": f"image:1x6x{WINDOW}x{WINDOW}",
        "trt_profile_opt_shapes": f"image:8x6x{WINDOW}x{WINDOW}",
        "trt_profile_max_shapes": f"image:8x6x{WINDOW}x{WINDOW}",
    }


def test_tensorrt_profile_covers_features_and_follows_trt_batches(gpu, tmp_path):
    path = build_elementwise(tmp_path / "a.onnx", window=WINDOW, in_channels=6, feature_shape=(4, 5), seed=1)
    gpu.runs_on = [TRT, CPU]
    spec = _spec(path, provider="tensorrt", cache=tmp_path / "engines", trt_batches=(2, 4, 16), io_binding=False)
    Model(spec, feature_row_shape=(5,), window=4, batch=4)
    options = dict(gpu.created[0][0][1])
    assert options["trt_profile_min_shapes"] == f"image:2x6x{WINDOW}x{WINDOW},audio:2x4x5"
    assert options["trt_profile_max_shapes"] == f"image:16x6x{WINDOW}x{WINDOW},audio:16x4x5"
    assert Path(options["trt_engine_cache_path"]).parent == tmp_path / "engines"


def test_engine_folder_is_keyed_by_the_model_content_and_the_runtime(tmp_path):
    a = build_elementwise(tmp_path / "a.onnx", window=WINDOW, seed=1)
    b = build_elementwise(tmp_path / "b.onnx", window=WINDOW, seed=1)
    c = build_elementwise(tmp_path / "c.onnx", window=WINDOW, seed=2)
    folder = {p.name: engine_folder(_spec(p, cache=tmp_path), "1.20.0") for p in (a, b, c)}
    assert folder["a.onnx"] == folder["b.onnx"] != folder["c.onnx"]  # the same bytes share an engine
    assert engine_folder(_spec(a, cache=tmp_path), "1.21.0") != folder["a.onnx"]


def test_engine_folder_changes_with_the_models_external_data(tmp_path):
    import onnx

    model = onnx.load(str(build_elementwise(tmp_path / "built.onnx", window=WINDOW, seed=1)))
    onnx.save_model(model, str(tmp_path / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.data", size_threshold=0)
    before = engine_folder(_spec(tmp_path / "m.onnx", cache=tmp_path), "1.20.0")
    data = bytearray((tmp_path / "m.data").read_bytes())
    data[0] ^= 1  # new weights, the .onnx file unchanged
    (tmp_path / "m.data").write_bytes(bytes(data))
    assert engine_folder(_spec(tmp_path / "m.onnx", cache=tmp_path), "1.20.0") != before


def test_the_cpu_gets_no_options(model_path):
    assert provider_options(_spec(model_path), CPU, "1.20.0", None, 4) == {}


def test_every_call_on_an_accelerator_has_the_same_shape(gpu, model_path):
    """The last, short batch is padded to the run's batch and the padding's output dropped."""
    model = Model(_spec(model_path, provider="cuda", io_binding=False), batch=4)
    assert model.call_batch == 4
    reference = real_session(str(model_path), providers=[CPU])
    images = _images(7)
    got = model.run(images)
    assert got.shape == (7, 3, WINDOW, WINDOW)
    assert {c["image"][0] for c in gpu.calls} == {(4, 6, WINDOW, WINDOW)}
    assert np.array_equal(got, reference.run(None, {"image": images})[0])


def test_auto_io_binding_binds_on_an_accelerator(gpu, model_path, monkeypatch):
    bound = []

    class Recorder:
        def __init__(self, session, ort, inputs, output, device, device_id):
            bound.append((inputs, output, device, device_id))

    monkeypatch.setattr(session, "BoundCalls", Recorder)
    Model(_spec(model_path, provider="cuda", device_id=3), batch=8)
    ((inputs, output, device, device_id),) = bound
    assert (device, device_id) == ("cuda", 3)
    assert inputs == {"image": ((8, 6, WINDOW, WINDOW), np.dtype(np.float32))}
    assert output == ("output", (8, 3, WINDOW, WINDOW), np.dtype(np.float32))


@pytest.mark.parametrize("batch", [1, 3])
def test_io_binding_on_the_cpu_equals_session_run(model_path, batch):
    bound = Model(_spec(model_path, provider="cpu", io_binding=True), batch=batch)
    plain = Model(_spec(model_path, provider="cpu", io_binding=False), batch=batch)
    assert bound.bound is not None and plain.bound is None
    for n in (1, batch, 5):
        images = _images(n)
        first = bound.run(images)
        assert np.array_equal(first, plain.run(images))
        assert np.array_equal(bound.run(images), first)  # buffers reused; the first output not overwritten


@pytest.mark.parametrize(("found", "words"), [
    ([], "ONNX Runtime is not installed: install composer with one of its extras"),
    (["onnxruntime", "onnxruntime-gpu"], "onnxruntime and onnxruntime-gpu are both installed"),
])
def test_none_or_two_onnxruntime_builds_are_one_line_with_the_fix(found, words):
    with pytest.raises(ModelError) as info:
        check_builds(found)
    message = str(info.value)
    assert message.startswith(words) and "\n" not in message and "pip " in message


def test_one_build_is_fine():
    check_builds(["onnxruntime-gpu"])
    check_builds(["onnxruntime"])


def test_a_fixed_batch_model_gets_no_profile_and_a_profile_must_take_the_batch(gpu, tmp_path):
    fixed = build_elementwise(tmp_path / "f.onnx", window=WINDOW, in_channels=6, batch=2, seed=1)
    gpu.runs_on = [TRT, CPU]
    model = Model(_spec(fixed, provider="tensorrt", cache=tmp_path, io_binding=False))
    assert model.call_batch == 2
    assert not any(k.startswith("trt_profile") for k in gpu.created[0][0][1])
    dynamic = build_elementwise(tmp_path / "d.onnx", window=WINDOW, in_channels=6, seed=1)
    with pytest.raises(ModelError, match=r"model.trt_batches = \[1, 2, 2\] does not take the batch of 4"):
        Model(_spec(dynamic, provider="tensorrt", cache=tmp_path, trt_batches=(1, 2, 2), io_binding=False))


def test_the_tensorrt_cache_folder_is_made_or_refused_in_one_line(model_path, tmp_path):
    spec = _spec(model_path, cache=tmp_path / "a" / "b")
    options = provider_options(spec, TRT, "1.20.0", None, 4)
    assert Path(options["trt_engine_cache_path"]).is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(ModelError, match="model.cache: cannot make TensorRT's cache folder"):
        provider_options(_spec(model_path, cache=tmp_path / "file"), TRT, "1.20.0", None, 4)


def test_the_demo_without_onnxruntime_writes_nothing(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from composer.cli.main import main

    monkeypatch.setattr(providers, "installed_builds", lambda: [])
    providers.runtime.cache_clear()
    try:
        result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "-n", "5"])
    finally:
        providers.runtime.cache_clear()
    assert result.exit_code == 2 and "ONNX Runtime is not installed" in result.output
    assert not (tmp_path / "demo").exists()
