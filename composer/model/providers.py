"""Which ONNX Runtime build and execution providers a model runs on, with what options (docs/gpu.md).

* :func:`runtime` imports ONNX Runtime once the installed builds are known to be exactly one: ``onnxruntime``
  and ``onnxruntime-gpu`` write the same ``onnxruntime/`` package, so with both installed whichever came last
  half-overwrote the other.
* :func:`choose_providers` turns ``model.provider`` into the list ONNX Runtime is asked for, and
  :func:`provider_options` gives each provider its options from ``[model]``: CUDA's device, cuDNN's algorithm
  search and memory limit; TensorRT's precision, engine and timing caches and optimisation profile.
* :func:`check_provider` compares what was asked with what the session really runs on
  (``session.get_providers()``), since ONNX Runtime falls back to the CPU when a CUDA library is missing.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from composer.config.job import ModelSpec
from composer.errors import ModelError
from composer.model.signature import model_digest

log = logging.getLogger("composer")

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
AUTO_ORDER = ("tensorrt", "cuda", "cpu")
CPU = PROVIDERS["cpu"]
ACCELERATED_PROVIDERS = frozenset({PROVIDERS["tensorrt"], PROVIDERS["cuda"]})
# Distributions that each install the onnxruntime/ package.
BUILDS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")
_FIX_BOTH = ("pip uninstall -y {names} && pip install {keep} (or reinstall composer with the one extra you want: "
             "\".[cpu]\" or \".[gpu]\")")


def installed_builds() -> list[str]:
    """The ONNX Runtime distributions installed in this environment (normally exactly one)."""
    found = []
    for name in BUILDS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def check_builds(found: list[str]) -> None:
    """Refuse none, or more than one, ONNX Runtime build, saying in one line how to fix it.

    Raises:
        ModelError: no build, or several, are installed.
    """
    if not found:
        raise ModelError("ONNX Runtime is not installed: install composer with one of its extras, from the checkout "
                         "pip install \".[cpu]\" (or \".[gpu]\" for CUDA and TensorRT)")
    if len(found) > 1:
        keep = "onnxruntime-gpu" if "onnxruntime-gpu" in found else found[-1]
        raise ModelError(f"{' and '.join(found)} are both installed and overwrite each other's onnxruntime "
                         f"package; keep one: " + _FIX_BOTH.format(names=" ".join(found), keep=keep))


@functools.cache
def runtime() -> ModuleType:
    """The ``onnxruntime`` module, once :func:`check_builds` has found exactly one build installed.

    Raises:
        ModelError: none or several builds are installed, or the one installed cannot be imported.
    """
    check_builds(installed_builds())
    try:
        import onnxruntime
    except ImportError as exc:  # a CUDA wheel on a machine without its libraries, say
        raise ModelError(f"ONNX Runtime is installed but cannot be imported: {exc}") from None
    return onnxruntime


def choose_providers(wanted: str, available: list[str]) -> list[str]:
    """The execution providers to ask for, best first, for ``model.provider = wanted``."""
    if wanted == "auto":
        return [PROVIDERS[p] for p in AUTO_ORDER if PROVIDERS[p] in available]
    name = PROVIDERS[wanted]
    if name not in available:
        raise ModelError(
            f"model.provider = {wanted!r}: {name} is not available in this onnxruntime "
            f"(available: {', '.join(available)}); install the gpu extra or use provider = \"auto\""
        )
    if wanted == "tensorrt":  # TensorRT hands CUDA the nodes it cannot build
        return [name, PROVIDERS["cuda"], CPU] if PROVIDERS["cuda"] in available else [name, CPU]
    return [name] if wanted == "cpu" else [name, CPU]


def cache_root() -> Path:
    """The user's cache folder for composer: ``$XDG_CACHE_HOME/composer`` (``~/.cache/composer``), or
    ``%LOCALAPPDATA%\\composer`` on Windows."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "composer"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "composer"


def engine_folder(spec: ModelSpec, version: str) -> Path:
    """Where TensorRT keeps engines and timing caches for ``spec``'s model: ``model.cache`` (else
    :func:`cache_root` ``/ tensorrt``), then a folder per model content and ONNX Runtime version, so that an
    edited model (its external data included) or another ONNX Runtime never picks up a stale engine."""
    key = f"{hashlib.sha256(model_digest(spec.path).encode()).hexdigest()[:16]}-ort{version}"
    return (spec.cache or cache_root() / "tensorrt") / key


def profile_shapes(shapes: dict[str, tuple[int, ...]], batches: tuple[int, int, int]) -> dict[str, str]:
    """TensorRT's optimisation profile: ``trt_profile_{min,opt,max}_shapes`` for inputs of per-sample ``shapes``
    at the min / opt / max ``batches``."""
    return {
        f"trt_profile_{which}_shapes": ",".join(f"{name}:{'x'.join(map(str, (n, *shape)))}"
                                                 for name, shape in shapes.items())
        for which, n in zip(("min", "opt", "max"), batches)
    }


def provider_options(spec: ModelSpec, name: str, version: str, shapes: dict[str, tuple[int, ...]] | None,
                     batch: int) -> dict[str, str]:
    """The options composer gives execution provider ``name`` for ``spec``'s model.

    Args:
        spec: the job's model section (its GPU keys).
        name: an ONNX Runtime provider name.
        version: ONNX Runtime's version (part of TensorRT's cache key).
        shapes: per-sample shapes of the model's inputs, for TensorRT's profile; None leaves it to TensorRT.
        batch: the batch every call on the accelerator is padded to (the profile's opt and max by default).
    """
    if name == PROVIDERS["cuda"]:
        options = {"device_id": str(spec.device_id), "cudnn_conv_algo_search": spec.cudnn_conv_algo_search.upper()}
        if spec.gpu_memory_limit is not None:
            options["gpu_mem_limit"] = str(spec.gpu_memory_limit)
        return options
    if name == PROVIDERS["tensorrt"]:
        where = engine_folder(spec, version)
        try:
            where.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or exc
            raise ModelError(f"model.cache: cannot make TensorRT's cache folder {where}: {reason}") from None
        folder = str(where)
        options = {
            "device_id": str(spec.device_id),
            "trt_fp16_enable": str(spec.fp16),
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": folder,
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": folder,
        }
        if spec.gpu_memory_limit is not None:
            options["trt_max_workspace_size"] = str(spec.gpu_memory_limit)
        batches = spec.trt_batches or (1, batch, batch)
        if not batches[0] <= batch <= batches[2]:
            raise ModelError(f"model.trt_batches = {list(batches)} does not take the batch of {batch} every call "
                             "on the accelerator has; set run.batch inside it")
        if shapes:
            options |= profile_shapes(shapes, batches)
        return options
    return {}


def check_provider(spec: ModelSpec, asked: list[str], got: str, reported: list[str]) -> None:
    """Compare the provider asked for first with the one the session runs on (``get_providers()[0]``).

    ``cuda`` or ``tensorrt`` asked for by name and ending on the CPU is an input error: the job asked for a GPU
    this machine cannot give. ``auto`` that found a GPU provider and ended on the CPU warns once; so does
    ``tensorrt`` ending on CUDA.

    Raises:
        ModelError: ``model.provider`` named a GPU provider and the session runs on the CPU.
    """
    if got == asked[0]:
        return
    if spec.provider in ("cuda", "tensorrt") and got == CPU:
        raise ModelError(
            f"model.provider = {spec.provider!r}: {asked[0]} could not be started, ONNX Runtime runs "
            f"{spec.path.name} on {', '.join(reported)}; check the CUDA and cuDNN libraries (docs/gpu.md, "
            f"--debug shows ONNX Runtime's reason) or set model.provider = \"cpu\""
        )
    _fell_back(spec.provider, asked[0], spec.path, got)


@functools.cache
def _fell_back(wanted: str, asked: str, path: Path, got: str) -> None:
    """One warning per model and provider, however many lanes load it: ONNX Runtime's own reason is not shown."""
    log.warning("model.provider = %r: %s could not be started, so model %s runs on %s (--debug shows ONNX "
                "Runtime's reason)", wanted, asked, path.name, got)


def session_providers(spec: ModelSpec, asked: list[str], version: str, shapes: dict[str, tuple[int, ...]] | None,
                      batch: int) -> list[Any]:
    """``providers=`` for ``InferenceSession``: each name with its options where it has any."""
    out: list[Any] = []
    for name in asked:
        options = provider_options(spec, name, version, shapes, batch)
        out.append((name, options) if options else name)
    return out
