"""The model adapter: one ONNX Runtime session, its inputs found and checked against the job (docs/design.md 3.5-3.7).

Only one thread may call a :class:`Model`'s :meth:`Model.run`; the processor gives each of its model lanes a
session of its own. Its outputs are checked (docs/design.md section 9): an output type that is not a float is
refused at load, and an output that holds NaN or inf fails the batch (:class:`NonFiniteOutput`).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from composer.config.job import ModelSpec
from composer.errors import ModelError

log = logging.getLogger("composer")

_PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_AUTO_ORDER = ("tensorrt", "cuda", "cpu")
ACCELERATED_PROVIDERS = frozenset({_PROVIDERS["tensorrt"], _PROVIDERS["cuda"]})
# ONNX element types that reach numpy as floats; any other output type is refused at load.
_FLOAT_OUTPUTS = frozenset({"tensor(float)", "tensor(float16)", "tensor(double)"})


class NonFiniteOutput(ModelError):
    """The model's output for one sample of a batch holds NaN or inf.

    Attributes:
        sample: the row of the batch given to :meth:`Model.run` at fault (the first, where several are); the
            renderers turn it into the output frame's number.
    """

    def __init__(self, message: str, sample: int) -> None:
        super().__init__(message)
        self.sample = sample


@dataclass(frozen=True)
class ModelInputs:
    """Names and per-sample shapes of the model's inputs, as matched to the job."""

    image: str
    image_shape: tuple[int, int, int]
    feature: str | None
    feature_shape: tuple[int, ...] | None
    batch: int | None  # fixed batch size, or None when the batch dimension is dynamic


def _dim(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _shape_text(shape: list[object]) -> str:
    return "[" + ", ".join(str(d) if _dim(d) else "?" for d in shape) + "]"


def match_inputs(path: Path, inputs: list[tuple[str, list[object]]], spec: ModelSpec,
                 feature_row_shape: tuple[int, ...] | None, window: int) -> ModelInputs:
    """Find the image and feature inputs among ``(name, shape)`` pairs and check them against the job.

    The image input is the rank-4 input with ``3 * len(inputs)`` channels; the feature input is the other one,
    and its per-sample element count must equal ``window`` rows of the features array.

    Raises:
        ModelError: naming the model and the shapes that do not fit.
    """
    channels = spec.image_channels
    images = [(n, s) for n, s in inputs if len(s) == 4 and _dim(s[1]) == channels]
    listing = ", ".join(f"{n} {_shape_text(s)}" for n, s in inputs)
    if len(images) != 1:
        raise ModelError(
            f"{path}: expected one rank-4 image input with {channels} channels "
            f"(3 per group of model.inputs = {list(spec.inputs)}); the model has {listing}"
        )
    image, image_shape = images[0]
    for axis, name in ((2, "height"), (3, "width")):
        size = _dim(image_shape[axis])
        if size is not None and size != spec.window:
            raise ModelError(
                f"{path}: image input {image} {_shape_text(image_shape)} has {name} {size}, the job gives "
                f"crop - 2 * border = {spec.window}"
            )
    others = [(n, s) for n, s in inputs if n != image]
    feature = feature_shape = None
    if feature_row_shape is None:
        if others:
            raise ModelError(f"{path}: the model also takes {listing}, but the job has no [features]")
    else:
        if len(others) != 1:
            raise ModelError(f"{path}: expected one feature input besides {image}; the model has {listing}")
        feature, shape = others[0]
        dims = [_dim(d) for d in shape[1:]]
        if any(d is None for d in dims):
            raise ModelError(f"{path}: feature input {feature} {_shape_text(shape)} needs fixed sizes")
        feature_shape = tuple(int(d) for d in dims if d is not None)
        wanted = window * math.prod(feature_row_shape)
        if math.prod(feature_shape) != wanted:
            raise ModelError(
                f"{path}: feature input {feature} takes {list(feature_shape)} = {math.prod(feature_shape)} "
                f"values per frame, but a window of {window} rows of shape {list(feature_row_shape)} holds "
                f"{wanted}"
            )
    batches = {_dim(s[0]) for _, s in inputs} - {None}
    if len(batches) > 1:
        raise ModelError(f"{path}: the inputs disagree on a fixed batch size: {listing}")
    return ModelInputs(
        image=image,
        image_shape=(channels, spec.window, spec.window),
        feature=feature,
        feature_shape=feature_shape,
        batch=batches.pop() if batches else None,
    )


def check_external_data(path: Path) -> None:
    """Refuse a model whose external-data files lie outside its own folder (a path-traversal guard).

    Raises:
        ModelError: the file is not an ONNX model, or an external tensor points outside its folder.
    """
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises assorted errors for a file that is not ONNX
        raise ModelError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    folder = path.parent.resolve()
    tensors = list(proto.graph.initializer)
    for node in proto.graph.node:
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(folder):
            raise ModelError(
                f"{path}: tensor {tensor.name!r} reads external data from {location!r}, outside the model's folder"
            )


def choose_providers(wanted: str, available: list[str]) -> list[str]:
    """The execution providers to ask for, best first, for ``model.provider = wanted``."""
    if wanted == "auto":
        return [_PROVIDERS[p] for p in _AUTO_ORDER if _PROVIDERS[p] in available]
    name = _PROVIDERS[wanted]
    if name not in available:
        raise ModelError(
            f"model.provider = {wanted!r}: {name} is not available in this onnxruntime "
            f"(available: {', '.join(available)}); install the gpu extra or use provider = \"auto\""
        )
    return [name] if wanted == "cpu" else [name, _PROVIDERS["cpu"]]


def expects_accelerator(wanted: str) -> bool:
    """Whether ``model.provider = wanted`` would put the model on an accelerator in this onnxruntime."""
    import onnxruntime as ort

    try:
        return choose_providers(wanted, ort.get_available_providers())[0] != _PROVIDERS["cpu"]
    except ModelError:
        return False  # the model's own load reports the missing provider


def session_options() -> Any:
    """ONNX Runtime session options whose log stays off stderr; composer reports what matters in one line.

    ONNX Runtime writes its warnings and errors to stderr itself, in colour: a failing node's error came before
    composer's one line that reports the same failure. Its log is therefore set to fatal only, for the session
    and for the process-wide default logger (which speaks while providers are set up, before a session has a
    logger of its own). With composer's log at debug level (``--debug``) its warnings and errors are shown.
    """
    import onnxruntime as ort

    severity = 2 if log.isEnabledFor(logging.DEBUG) else 4  # 2 warning, 3 error, 4 fatal
    ort.set_default_logger_severity(severity)
    options = ort.SessionOptions()
    options.log_severity_level = severity
    return options


@functools.cache
def _fell_back(wanted: str, asked: str, path: Path, got: str) -> None:
    """One warning per model and provider, however many lanes load it: ONNX Runtime's own reason is not shown."""
    log.warning("model.provider = %r: %s could not be started, so model %s runs on %s (--debug shows ONNX "
                "Runtime's reason)", wanted, asked, path.name, got)


class Model:
    """An ONNX model matched to a job: runs batches of image (and feature) inputs.

    Args:
        spec: the job's model section.
        feature_row_shape: shape of one features row (``features.shape[1:]``), or None without features.
        window: feature rows per output frame.
        threads: ONNX Runtime intra-op threads.
    """

    def __init__(self, spec: ModelSpec, feature_row_shape: tuple[int, ...] | None = None, window: int = 1,
                 threads: int = 1, spinning: bool = False) -> None:
        import onnxruntime as ort

        self.spec, self.threads = spec, threads
        path = spec.path
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        check_external_data(path)
        options = session_options()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # A planned memory pattern keeps an arena sized for the largest batch seen (about 1 GB for the demo
        # U-Net at batch 4); without it the arena holds ~40% less at the same speed.
        options.enable_mem_pattern = False
        if not spinning:
            # Idle intra-op threads would otherwise spin on cores the composite workers need.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = choose_providers(spec.provider, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path}: cannot load the model: {first}") from None
        self.provider = self.session.get_providers()[0]
        log.debug("model %s: a session on %s", path.name, self.provider)  # the render says it once, at info
        if spec.provider != "auto" and self.provider != providers[0]:
            _fell_back(spec.provider, providers[0], path, self.provider)
        inputs = [(i.name, list(i.shape)) for i in self.session.get_inputs()]
        self.inputs = match_inputs(path, inputs, spec, feature_row_shape, window)
        self.output = self.session.get_outputs()[0].name
        out_shape = list(self.session.get_outputs()[0].shape)
        expected = [3, spec.window, spec.window]
        if len(out_shape) != 4 or any(_dim(d) not in (None, e) for d, e in zip(out_shape[1:], expected)):
            raise ModelError(
                f"{path}: first output {self.output} is {_shape_text(out_shape)}, expected "
                f"[batch, 3, {spec.window}, {spec.window}]"
            )
        out_type = self.session.get_outputs()[0].type
        # A type ONNX Runtime cannot name here (not "tensor(...)") is left to the first run's check.
        if out_type.startswith("tensor(") and out_type not in _FLOAT_OUTPUTS:
            raise ModelError(
                f"{path}: first output {self.output!r} is {out_type}; composer needs float values in [0, 1] "
                "(float, float16 or double)"
            )

    @property
    def accelerated(self) -> bool:
        """Whether the session runs on an accelerator (CUDA or TensorRT) rather than the CPU."""
        return self.provider in ACCELERATED_PROVIDERS

    def batch_size(self, wanted: int) -> int:
        """The batch to build: the model's fixed batch if it has one, else ``wanted``."""
        return self.inputs.batch or wanted

    def run(self, images: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """Predictions ``[n, 3, S, S]`` for ``n`` samples; a fixed-batch model gets the batch padded.

        The output is checked for NaN and inf (``np.isfinite(out).all()``): about 30 us for one 3 x 320 x 320
        output and 0.3 ms for a batch of 4 on one core, against milliseconds of inference. The calls on batches
        of zeros that warm a session up or time it ignore :class:`NonFiniteOutput`: zeros are not a frame, and a
        model may divide by an image's spread, which a real frame has and zeros do not.

        Args:
            images: ``[n, channels, S, S]`` float32.
            features: ``[n, ...]`` float32, where the model takes features.

        Raises:
            ModelError: inference failed, or the output is not ``[n, 3, S, S]`` floats.
            NonFiniteOutput: the output of a sample holds NaN or inf.
        """
        out = self._infer(images, features)
        if not np.issubdtype(out.dtype, np.floating):
            raise ModelError(
                f"{self.spec.path}: output {self.output!r} is {out.dtype}; composer needs float values in [0, 1]"
            )
        if not np.isfinite(out).all():
            bad = ~np.isfinite(out.reshape(len(out), -1))
            sample = int(np.flatnonzero(bad.any(axis=1))[0])
            what = "NaN" if np.isnan(out[sample]).any() else "inf"
            raise NonFiniteOutput(
                f"{self.spec.path}: output {self.output!r} holds {what} (sample {sample} of a batch of {len(out)}); "
                "the model must return finite values in [0, 1]",
                sample,
            )
        return out

    def _infer(self, images: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """The session's output for the ``n`` samples, in batches of the model's fixed size where it has one."""
        n = len(images)
        fixed = self.inputs.batch
        if fixed is not None and n > fixed:
            parts = [
                self._infer(images[k : k + fixed], None if features is None else features[k : k + fixed])
                for k in range(0, n, fixed)
            ]
            return np.concatenate(parts)
        if fixed is not None and n != fixed:
            images = _pad(images, fixed)
            features = _pad(features, fixed) if features is not None else None
        feed = {self.inputs.image: images}
        if self.inputs.feature is not None:
            assert features is not None
            feed[self.inputs.feature] = features.reshape(len(images), *self.inputs.feature_shape or ())
        try:
            out = self.session.run([self.output], feed)[0]
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{self.spec.path}: inference failed: {str(exc).strip().splitlines()[0]}") from None
        if out.shape[1:] != (3, self.spec.window, self.spec.window):
            raise ModelError(
                f"{self.spec.path}: output shape {list(out.shape)} is not "
                f"[batch, 3, {self.spec.window}, {self.spec.window}]"
            )
        return out[:n]  # the padding's outputs, whatever they hold, are dropped unchecked


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    padded = np.zeros((size, *array.shape[1:]), dtype=array.dtype)
    padded[: len(array)] = array
    return padded
