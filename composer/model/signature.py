"""The model's signature: its inputs found among those it declares and checked against the job (docs/design.md
3.5-3.7), and its file checked before ONNX Runtime reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.config.job import ModelSpec
from composer.errors import ModelError
from composer.runtime.digest import file_digest


@dataclass(frozen=True)
class ModelInputs:
    """Names and per-sample shapes of the model's inputs, as matched to the job."""

    image: str
    image_shape: tuple[int, int, int]
    feature: str | None
    feature_shape: tuple[int, ...] | None
    batch: int | None  # fixed batch size, or None when the batch dimension is dynamic


def known_dim(value: object) -> int | None:
    """A dimension's size, or None where ONNX leaves it open (a name, None, or not positive)."""
    return value if isinstance(value, int) and value > 0 else None


def shape_text(shape: list[object]) -> str:
    """``[?, 6, 320, 320]``: a shape as messages show it, open dimensions as ``?``."""
    return "[" + ", ".join(str(d) if known_dim(d) else "?" for d in shape) + "]"


def match_inputs(path: Path, inputs: list[tuple[str, list[object]]], spec: ModelSpec,
                 feature_row_shape: tuple[int, ...] | None, window: int) -> ModelInputs:
    """Find the image and feature inputs among ``(name, shape)`` pairs and check them against the job.

    The image input is the rank-4 input with ``3 * len(inputs)`` channels; the feature input is the other one,
    and its per-sample element count must equal ``window`` rows of the features array.

    Raises:
        ModelError: naming the model and the shapes that do not fit.
    """
    channels = spec.image_channels
    images = [(n, s) for n, s in inputs if len(s) == 4 and known_dim(s[1]) == channels]
    listing = ", ".join(f"{n} {shape_text(s)}" for n, s in inputs)
    if len(images) != 1:
        raise ModelError(
            f"{path}: expected one rank-4 image input with {channels} channels "
            f"(3 per group of model.inputs = {list(spec.inputs)}); the model has {listing}"
        )
    image, image_shape = images[0]
    for axis, name in ((2, "height"), (3, "width")):
        size = known_dim(image_shape[axis])
        if size is not None and size != spec.window:
            raise ModelError(
                f"{path}: image input {image} {shape_text(image_shape)} has {name} {size}, the job gives "
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
        dims = [known_dim(d) for d in shape[1:]]
        if any(d is None for d in dims):
            raise ModelError(f"{path}: feature input {feature} {shape_text(shape)} needs fixed sizes")
        feature_shape = tuple(int(d) for d in dims if d is not None)
        wanted = window * math.prod(feature_row_shape)
        if math.prod(feature_shape) != wanted:
            raise ModelError(
                f"{path}: feature input {feature} takes {list(feature_shape)} = {math.prod(feature_shape)} "
                f"values per frame, but a window of {window} rows of shape {list(feature_row_shape)} holds "
                f"{wanted}"
            )
    batches = {known_dim(s[0]) for _, s in inputs} - {None}
    if len(batches) > 1:
        raise ModelError(f"{path}: the inputs disagree on a fixed batch size: {listing}")
    return ModelInputs(
        image=image,
        image_shape=(channels, spec.window, spec.window),
        feature=feature,
        feature_shape=feature_shape,
        batch=batches.pop() if batches else None,
    )


def check_external_data(path: Path) -> Any:
    """Refuse a model whose external-data files lie outside its own folder (a path-traversal guard).

    Returns:
        The model's ``onnx.ModelProto``, its external data not loaded.

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
    return proto


def declared_shapes(proto: Any, spec: ModelSpec) -> dict[str, tuple[int, ...]] | None:
    """Per-sample shapes of the graph's inputs, as TensorRT's profile needs them before a session exists: the
    image input's height and width are the job's window where the model leaves them open. None where another
    size is left open, or where the batch is fixed (TensorRT then builds for the model's own shapes)."""
    initialisers = {t.name for t in proto.graph.initializer}
    shapes = {}
    for value in proto.graph.input:
        if value.name in initialisers:
            continue
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in value.type.tensor_type.shape.dim]
        if len(dims) == 4 and dims[1] == spec.image_channels:
            dims[2:] = [spec.window, spec.window]
        if len(dims) < 2 or dims[0] is not None or any(d is None for d in dims[1:]):
            return None
        shapes[value.name] = tuple(int(d) for d in dims[1:] if d is not None)
    return shapes


def external_data_files(model: Path) -> list[Path]:
    """The files holding a model's external tensors (checked to lie in its folder when the model is opened)."""
    import onnx

    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception:  # noqa: BLE001 - not ONNX: opening the model reports it
        return []
    tensors = list(proto.graph.initializer)
    for node in proto.graph.node:
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    names = {e.value for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL
             for e in t.external_data if e.key == "location"}
    return [model.parent / name for name in sorted(names)]


def model_digest(path: Path) -> str:
    """The content of an ONNX model: its file's SHA-256 and those of its external data files (``"missing"`` for
    one that is not there)."""
    files = [path, *external_data_files(path)]
    return "+".join(file_digest(f) if f.is_file() else "missing" for f in files)
