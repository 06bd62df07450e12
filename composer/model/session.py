"""The model adapter: one ONNX Runtime session on the provider it really runs on, its inputs matched to the job
(:mod:`composer.model.signature`), its providers and their options from :mod:`composer.model.providers`.

Only one thread may call a :class:`Model`'s :meth:`Model.run`; the processor gives each of its model lanes a
session of its own. Its outputs are checked (docs/design.md section 9): an output type that is not a float is
refused at load, and an output that holds NaN or inf fails the batch (:class:`NonFiniteOutput`). On an
accelerator every call has the same batch (the last one padded), so that TensorRT and cuDNN meet one shape, and
the inputs and output are bound to buffers allocated once (:mod:`composer.model.binding`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from composer.config.defaults import default_batch
from composer.config.job import ModelSpec
from composer.errors import ModelError
from composer.model.binding import BoundCalls
from composer.model.providers import (
    ACCELERATED_PROVIDERS,
    check_provider,
    choose_providers,
    runtime,
    session_providers,
)
from composer.model.signature import check_external_data, declared_shapes, known_dim, match_inputs, shape_text

log = logging.getLogger("composer")

# ONNX element types that reach numpy as floats; any other output type is refused at load.
_FLOATS: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
}


class NonFiniteOutput(ModelError):
    """The model's output for one sample of a batch holds NaN or inf.

    Attributes:
        sample: the row of the batch given to :meth:`Model.run` at fault (the first, where several are); the
            renderers turn it into the output frame's number.
    """

    def __init__(self, message: str, sample: int) -> None:
        super().__init__(message)
        self.sample = sample


def session_options() -> Any:
    """ONNX Runtime session options whose log stays off stderr; composer reports what matters in one line.

    ONNX Runtime writes its warnings and errors to stderr itself, in colour: a failing node's error came before
    composer's one line that reports the same failure. Its log is therefore set to fatal only, for the session
    and for the process-wide default logger (which speaks while providers are set up, before a session has a
    logger of its own). With composer's log at debug level (``--debug``) its warnings and errors are shown.
    """
    ort = runtime()

    severity = 2 if log.isEnabledFor(logging.DEBUG) else 4  # 2 warning, 3 error, 4 fatal
    ort.set_default_logger_severity(severity)
    options = ort.SessionOptions()
    options.log_severity_level = severity
    return options


class Model:
    """An ONNX model matched to a job: runs batches of image (and feature) inputs.

    Args:
        spec: the job's model section.
        feature_row_shape: shape of one features row (``features.shape[1:]``), or None without features.
        window: feature rows per output frame.
        threads: ONNX Runtime intra-op threads.
        spinning: whether idle intra-op threads spin.
        batch: the job's ``[run] batch`` (None: the provider's default), the batch every call on an accelerator
            or with IO binding is padded to, and TensorRT's profile is built for.

    Raises:
        ModelError: the model cannot be loaded, does not fit the job, or a GPU provider asked for by name ended
            on the CPU.
    """

    def __init__(self, spec: ModelSpec, feature_row_shape: tuple[int, ...] | None = None, window: int = 1,
                 threads: int = 1, spinning: bool = False, batch: int | None = None) -> None:
        ort = runtime()

        self.spec, self.threads = spec, threads
        path = spec.path
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        proto = check_external_data(path)
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
        asked = choose_providers(spec.provider, ort.get_available_providers())
        accelerator_batch = default_batch(batch, accelerated=True)  # what TensorRT profiles, before the session
        providers = session_providers(spec, asked, ort.__version__, declared_shapes(proto, spec), accelerator_batch)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path}: cannot load the model: {first}") from None
        reported = list(self.session.get_providers())
        self.provider = reported[0]
        log.debug("model %s: a session on %s", path.name, self.provider)  # the render says it once, at info
        check_provider(spec, asked, self.provider, reported)
        inputs = [(i.name, list(i.shape)) for i in self.session.get_inputs()]
        self.inputs = match_inputs(path, inputs, spec, feature_row_shape, window)
        # A float16 input gets float16 values (composer prepares float32).
        self.dtypes = {i.name: _FLOATS.get(i.type, np.dtype(np.float32)) for i in self.session.get_inputs()}
        output = self.session.get_outputs()[0]
        self.output = output.name
        out_shape = list(output.shape)
        expected = [3, spec.window, spec.window]
        if len(out_shape) != 4 or any(known_dim(d) not in (None, e) for d, e in zip(out_shape[1:], expected)):
            raise ModelError(
                f"{path}: first output {self.output} is {shape_text(out_shape)}, expected "
                f"[batch, 3, {spec.window}, {spec.window}]"
            )
        # A type ONNX Runtime cannot name here (not "tensor(...)") is left to the first run's check.
        if output.type.startswith("tensor(") and output.type not in _FLOATS:
            raise ModelError(
                f"{path}: first output {self.output!r} is {output.type}; composer needs float values in [0, 1] "
                "(float, float16 or double)"
            )
        binding = spec.io_binding if spec.io_binding is not None else self.accelerated
        # Every call of one shape: on an accelerator (one TensorRT engine, one cuDNN algorithm search) and
        # with IO binding (buffers of one size). The model's own fixed batch comes first.
        self.call_batch = self.batch_size(default_batch(batch, self.accelerated)) \
            if self.accelerated or binding else self.inputs.batch
        self.bound: BoundCalls | None = None
        if binding:
            assert self.call_batch is not None
            self.bound = self._bind(ort, self.call_batch, _FLOATS.get(output.type, np.dtype(np.float32)))
        log.debug("model %s: calls of batch %s, IO binding %s", path.name, self.call_batch or "as given",
                  "on" if binding else "off")

    def _bind(self, ort: Any, batch: int, out_dtype: np.dtype[Any]) -> BoundCalls:
        image = self.inputs.image
        inputs: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {
            image: ((batch, *self.inputs.image_shape), self.dtypes[image])}
        if self.inputs.feature is not None:
            inputs[self.inputs.feature] = ((batch, *(self.inputs.feature_shape or ())),
                                           self.dtypes[self.inputs.feature])
        output = (self.output, (batch, 3, self.spec.window, self.spec.window), out_dtype)
        device = "cpu" if not self.accelerated else "cuda"
        try:
            return BoundCalls(self.session, ort, inputs, output, device, self.spec.device_id)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{self.spec.path}: cannot bind the model's inputs and output on {device}: "
                             f"{str(exc).strip().splitlines()[0]}") from None

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
        """The session's output for the ``n`` samples, in calls of :attr:`call_batch` where there is one."""
        n = len(images)
        fixed = self.call_batch
        if fixed is not None and n > fixed:
            parts = [
                self._infer(images[k : k + fixed], None if features is None else features[k : k + fixed])
                for k in range(0, n, fixed)
            ]
            return np.concatenate(parts)
        if fixed is not None and n != fixed:
            images = _pad(images, fixed)
            features = _pad(features, fixed) if features is not None else None
        feed = {self.inputs.image: images.astype(self.dtypes[self.inputs.image], copy=False)}
        if self.inputs.feature is not None:
            assert features is not None
            feed[self.inputs.feature] = features.reshape(len(images), *self.inputs.feature_shape or ()).astype(
                self.dtypes[self.inputs.feature], copy=False)
        try:
            out = self.bound.run(feed) if self.bound is not None else self.session.run([self.output], feed)[0]
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
