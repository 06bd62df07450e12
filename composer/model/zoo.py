"""ONNX models built in code with random, seeded weights: the benchmark and test models of composer.

Nothing is downloaded. Every builder writes one model to ``path`` and returns ``path``:

- :func:`build_unet`: a depthwise-separable U-Net shaped like a lip-sync renderer (the heavy benchmark model,
  inference dominates on a CPU).
- :func:`build_light`: one 3x3 convolution (the light benchmark model, standing in for a GPU).
- :func:`build_elementwise`: elementwise ops only, so its output for an image is bit-identical whatever the
  batch around it (the model the exactness tests use).

All share the interface of docs/design.md §3: ``image`` [B, C, W, W] and optionally ``audio`` [B, *feature_shape]
in, ``output`` [B, 3, W, W] in [0, 1] out. ``batch=None`` makes the batch dimension dynamic.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from composer.errors import ModelError

__all__ = ["build_audio_encoder", "build_elementwise", "build_light", "build_unet"]

_OPSET = 17
# IR 8 loads in every onnxruntime since 1.12; the onnx package would otherwise stamp its own, newer IR,
# which older runtimes reject.
_IR_VERSION = 8
# Stride-2 stages of the U-Net encoder: the window must be divisible by 2 ** _DEPTH.
_DEPTH = 4


class _Graph:
    """Collects nodes and initializers, naming tensors uniquely, with seeded weights."""

    def __init__(self, seed: int) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self._ids = itertools.count()

    def const(self, value: np.ndarray, prefix: str = "const") -> str:
        """Adds an initializer and returns its name."""
        name = f"{prefix}_{next(self._ids)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def ints(self, *values: int) -> str:
        """Adds an int64 vector initializer (shapes, slice bounds) and returns its name."""
        return self.const(np.array(values, np.int64), "ints")

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        """Adds a node with one output and returns the output's name."""
        output = output or f"{op_type.lower()}_{next(self._ids)}"
        self.nodes.append(helper.make_node(op_type, inputs, [output], **attrs))
        return output

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        *,
        kernel: int = 1,
        stride: int = 1,
        depthwise: bool = False,
        relu: bool = False,
        gain: float | None = None,
    ) -> str:
        """Adds a Conv (optionally depthwise, optionally followed by Relu) with He-scaled random weights.

        ``gain`` defaults to 2 before a Relu (He) and 1 otherwise, so activations keep a unit-ish scale
        through depth.
        """
        group = cin if depthwise else 1
        fan_in = cin // group * kernel * kernel
        std = math.sqrt(((2.0 if relu else 1.0) if gain is None else gain) / fan_in)
        weight = self.rng.normal(0.0, std, (cout, cin // group, kernel, kernel)).astype(np.float32)
        bias = self.rng.normal(0.0, 0.05, cout).astype(np.float32)
        pad = kernel // 2
        y = self.op(
            "Conv",
            [x, self.const(weight, "w"), self.const(bias, "b")],
            group=group,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
        )
        return self.op("Relu", [y]) if relu else y

    def separable(self, x: str, cin: int, cout: int, *, stride: int = 1) -> str:
        """Depthwise 3x3 conv then pointwise 1x1 conv + Relu: the block of light-weight renderers."""
        y = self.conv(x, cin, cin, kernel=3, stride=stride, depthwise=True)
        return self.conv(y, cin, cout, relu=True)

    def save(self, path: str | Path, name: str, inputs: list[onnx.ValueInfoProto], window: int) -> Path:
        """Checks the graph, whose output is ``output`` [B, 3, window, window], and writes it to ``path``."""
        batch = inputs[0].type.tensor_type.shape.dim[0]
        return self.save_graph(path, name, inputs, [_tensor("output", batch.dim_value or None, (3, window, window))])

    def save_graph(self, path: str | Path, name: str, inputs: list[onnx.ValueInfoProto],
                   outputs: list[onnx.ValueInfoProto]) -> Path:
        """Checks the graph with these ``inputs`` and ``outputs`` and writes it to ``path``."""
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="composer.model.zoo"
        )
        model.ir_version = _IR_VERSION
        onnx.checker.check_model(model)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
        return path


def _tensor(name: str, batch: int | None, shape: tuple[int, ...]) -> onnx.ValueInfoProto:
    dims: list[int | str] = [batch if batch is not None else "batch", *shape]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def _check_args(window: int, in_channels: int, batch: int | None) -> None:
    if window < 1 or in_channels < 1:
        raise ModelError(f"window and in_channels must be positive, got {window} and {in_channels}")
    if batch is not None and batch < 1:
        raise ModelError(f"batch must be positive or None (dynamic), got {batch}")


def build_unet(
    path: str | Path,
    *,
    window: int = 320,
    in_channels: int = 6,
    feature_shape: tuple[int, ...] | None = (32, 16, 16),
    batch: int | None = None,
    base: int = 32,
    seed: int = 0,
) -> Path:
    """Builds a depthwise-separable U-Net shaped like a lip-sync renderer (the heavy benchmark model).

    A 3x3 stem, then ``_DEPTH`` stride-2 separable stages (``base``, 2x, 4x, 8x channels, capped at 8x) down
    to a bottleneck of ``window / 16``. The audio is projected by a 1x1 conv, resized to the bottleneck's
    size and concatenated there (a rank other than 3 is flattened to channels first). The decoder upsamples
    (nearest, x2), concatenates the skip and applies a separable block per stage; a 1x1 conv to 3 channels
    and a Sigmoid end it.

    Args:
        path: Where to write the model.
        window: Side of the square image input and output; divisible by 16.
        in_channels: Channels of the image input (3 per input group).
        feature_shape: Shape of one sample's feature input, or None for no feature input.
        batch: Fixed batch size, or None for a dynamic batch dimension.
        base: Channels of the first stage; the cost grows about with its square. The default costs about
            45 ms per 320 x 320 frame on one CPU thread.
        seed: Seed of the random weights.

    Returns:
        ``path`` as a Path.

    Raises:
        ModelError: The arguments do not describe a buildable model.
    """
    _check_args(window, in_channels, batch)
    if window % 2**_DEPTH:
        raise ModelError(f"build_unet needs a window divisible by {2**_DEPTH}, got {window}")
    g = _Graph(seed)
    widths = [base * min(2**level, 8) for level in range(_DEPTH + 1)]
    x = g.conv("image", in_channels, widths[0], kernel=3, relu=True)
    skips = [x]
    for level in range(1, _DEPTH + 1):
        x = g.separable(x, widths[level - 1], widths[level], stride=2)
        skips.append(x)
    channels = widths[-1]
    inputs = [_tensor("image", batch, (in_channels, window, window))]
    if feature_shape is not None:
        inputs.append(_tensor("audio", batch, tuple(feature_shape)))
        x, channels = _fuse_audio(g, x, channels, feature_shape, window // 2**_DEPTH)
    for level in range(_DEPTH - 1, -1, -1):
        up = g.op("Resize", [x, "", g.const(np.array([1, 1, 2, 2], np.float32), "scales")], mode="nearest")
        x = g.op("Concat", [up, skips[level]], axis=1)
        x = g.separable(x, channels + widths[level], widths[level])
        channels = widths[level]
    # He gain on the last conv too: logits of about unit scale, so the Sigmoid is neither saturated nor flat.
    x = g.conv(x, channels, 3, gain=2.0)
    g.op("Sigmoid", [x], output="output")
    return g.save(path, "unet", inputs, window)


def _fuse_audio(g: _Graph, x: str, channels: int, shape: tuple[int, ...], side: int) -> tuple[str, int]:
    """Projects the audio, resizes it to the bottleneck (side x side) and fuses it there."""
    audio, audio_channels = "audio", shape[0]
    if len(shape) != 3:  # any other rank is taken as channels of a 1 x 1 grid
        audio, audio_channels = g.op("Reshape", [audio, g.ints(0, -1, 1, 1)]), int(np.prod(shape))
    a = g.conv(audio, audio_channels, channels, relu=True)
    # Sizes rather than scales: exact for any feature grid, and the batch dimension is taken from the input.
    batch_and_channels = g.op("Slice", [g.op("Shape", [a]), g.ints(0), g.ints(2)])
    sizes = g.op("Concat", [batch_and_channels, g.ints(side, side)], axis=0)
    a = g.op("Resize", [a, "", "", sizes], mode="linear")
    x = g.op("Concat", [x, a], axis=1)
    return g.separable(x, 2 * channels, channels), channels


def _first_feature(g: _Graph) -> str:
    """The first element of each sample's feature input, as [B, 1, 1, 1]."""
    flat = g.op("Reshape", ["audio", g.ints(0, -1)])
    first = g.op("Slice", [flat, g.ints(0), g.ints(1), g.ints(1)])
    return g.op("Reshape", [first, g.ints(0, 1, 1, 1)])


def build_elementwise(
    path: str | Path,
    *,
    window: int,
    in_channels: int = 6,
    feature_shape: tuple[int, ...] | None = None,
    batch: int | None = None,
    seed: int = 0,
) -> Path:
    """Builds a test model made of elementwise ops only, so it is bit-identical whatever the batch size.

    ``output = Sigmoid(a * image[:, 0:3] + b * image[:, 3:6] + c + d * f)`` with per-channel constants
    ``a``, ``b``, ``c``, a scalar ``d`` and ``f`` the first element of each sample's feature input. The ``b``
    term needs ``in_channels >= 6`` and the ``d`` term a ``feature_shape``.

    Args:
        path: Where to write the model.
        window: Side of the square image input and output.
        in_channels: Channels of the image input; at least 3.
        feature_shape: Shape of one sample's feature input, or None for no feature input.
        batch: Fixed batch size, or None for a dynamic batch dimension.
        seed: Seed of the constants.

    Returns:
        ``path`` as a Path.

    Raises:
        ModelError: The arguments do not describe a buildable model.
    """
    _check_args(window, in_channels, batch)
    if in_channels < 3:
        raise ModelError(f"build_elementwise needs at least 3 input channels, got {in_channels}")
    g = _Graph(seed)

    def channel_slice(start: int) -> str:
        return g.op("Slice", ["image", g.ints(start), g.ints(start + 3), g.ints(1)])

    def per_channel(low: float, high: float) -> str:
        return g.const(g.rng.uniform(low, high, (1, 3, 1, 1)).astype(np.float32), "k")

    x = g.op("Add", [g.op("Mul", [channel_slice(0), per_channel(1.0, 3.0)]), per_channel(-1.5, -0.5)])
    if in_channels >= 6:
        x = g.op("Add", [x, g.op("Mul", [channel_slice(3), per_channel(-1.0, 1.0)])])
    inputs = [_tensor("image", batch, (in_channels, window, window))]
    if feature_shape is not None:
        inputs.append(_tensor("audio", batch, tuple(feature_shape)))
        d = g.const(np.array(g.rng.uniform(0.5, 1.0), np.float32), "d")
        x = g.op("Add", [x, g.op("Mul", [_first_feature(g), d])])
    g.op("Sigmoid", [x], output="output")
    return g.save(path, "elementwise", inputs, window)


def build_light(
    path: str | Path,
    *,
    window: int = 320,
    in_channels: int = 6,
    feature_shape: tuple[int, ...] | None = (32, 16, 16),
    batch: int | None = None,
    seed: int = 0,
) -> Path:
    """Builds a cheap model (one 3x3 conv): inference costs little, as on a GPU, so the CPU stages dominate.

    ``output = Sigmoid(conv3x3(image) + d * mean(audio))``, the mean taken per sample.

    Args:
        path: Where to write the model.
        window: Side of the square image input and output.
        in_channels: Channels of the image input.
        feature_shape: Shape of one sample's feature input, or None for no feature input.
        batch: Fixed batch size, or None for a dynamic batch dimension.
        seed: Seed of the random weights.

    Returns:
        ``path`` as a Path.

    Raises:
        ModelError: The arguments do not describe a buildable model.
    """
    _check_args(window, in_channels, batch)
    g = _Graph(seed)
    x = g.conv("image", in_channels, 3, kernel=3)
    inputs = [_tensor("image", batch, (in_channels, window, window))]
    if feature_shape is not None:
        inputs.append(_tensor("audio", batch, tuple(feature_shape)))
        axes = list(range(1, len(feature_shape) + 1))
        mean = g.op("ReduceMean", ["audio"], axes=axes, keepdims=0)
        mean = g.op("Reshape", [mean, g.ints(-1, 1, 1, 1)])
        x = g.op("Add", [x, g.op("Mul", [mean, g.const(np.array(0.5, np.float32), "d")])])
    g.op("Sigmoid", [x], output="output")
    return g.save(path, "light", inputs, window)


# hubert's convolutional feature front end: (kernel, stride) per layer, 400 samples seen and 320 between rows.
_AUDIO_LAYERS = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))
_AUDIO_PAD = 40  # samples of zeros on each side: floor(S / 320) rows for S samples, each centred on its hop


def build_audio_encoder(path: str | Path, *, dim: int = 512, channels: int = 32, seed: int = 0) -> Path:
    """Builds an audio encoder shaped like hubert's feature front end: strided 1-D convolutions over 16 kHz PCM.

    ``audio`` [1, S] float32 in; ``features`` [1, floor(S / 320), dim] out: 50 rows a second at 16 kHz. The
    input is padded with 40 zeros on each side, so row ``j`` sees samples ``320 j - 40 .. 320 j + 359`` and a
    chunk cut on a multiple of 320 samples gives the rows of the whole audio once its edges are dropped.

    Args:
        path: Where to write the model.
        dim: Values per row.
        channels: Channels of the convolutions.
        seed: Seed of the random weights.

    Returns:
        ``path`` as a Path.
    """
    if dim < 1 or channels < 1:
        raise ModelError(f"dim and channels must be positive, got {dim} and {channels}")
    g = _Graph(seed)
    x = g.op("Unsqueeze", ["audio", g.ints(1)])  # [1, 1, S]
    cin = 1
    for index, (kernel, stride) in enumerate(_AUDIO_LAYERS):
        weight = g.rng.normal(0.0, math.sqrt(2.0 / (cin * kernel)), (channels, cin, kernel)).astype(np.float32)
        pads = [_AUDIO_PAD, _AUDIO_PAD] if index == 0 else [0, 0]
        x = g.op("Conv", [x, g.const(weight, "w"), g.const(np.zeros(channels, np.float32), "b")],
                 kernel_shape=[kernel], strides=[stride], pads=pads)
        x = g.op("Relu", [x])
        cin = channels
    weight = g.rng.normal(0.0, math.sqrt(1.0 / channels), (dim, channels, 1)).astype(np.float32)
    x = g.op("Conv", [x, g.const(weight, "w"), g.const(np.zeros(dim, np.float32), "b")], kernel_shape=[1])
    g.op("Transpose", [x], output="features", perm=[0, 2, 1])  # [1, F, dim]
    audio = helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, "samples"])
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, "rows", dim])
    return g.save_graph(path, "audio_encoder", [audio], [features])
