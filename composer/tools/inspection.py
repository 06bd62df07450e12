"""What an ONNX model takes and returns, and whether it fits a job, in lines a person can read.

Named ``inspection`` rather than ``inspect`` so that it does not shadow the standard library's module.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from composer.config.job import Job
from composer.errors import JobError, ModelError
from composer.inputs.audio_features import rows_per_frame
from composer.inputs.encoder import AudioEncoder
from composer.inputs.plan import open_plan, output_fps
from composer.inputs.sources import open_template
from composer.model.providers import runtime
from composer.model.session import Model, session_options

__all__ = ["DOES_NOT_FIT", "check_fit", "describe_model"]

DOES_NOT_FIT = "does not fit: "

# ONNX Runtime's type strings, in NumPy's names, which is what a user feeding arrays thinks in.
_ELEMENT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


def _dim_text(dim: Any) -> str:
    if isinstance(dim, int) and dim > 0:
        return str(dim)
    if isinstance(dim, str) and dim:
        return dim  # a symbolic dimension, e.g. "batch"
    return "?"


def shape_text(shape: list[Any]) -> str:
    """A shape as ``[batch, 6, 320, 320]``: fixed sizes as numbers, dynamic ones by name or ``?``."""
    return "[" + ", ".join(_dim_text(d) for d in shape) + "]"


def _element_type(type_name: str) -> str:
    return _ELEMENT_TYPES.get(type_name, type_name)


def describe_model(path: Path) -> str:
    """Lists a model's inputs and outputs with name, shape and element type, one per line.

    The model is loaded with ONNX Runtime on the CPU, so the description does not depend on a GPU.

    Raises:
        ModelError: The file is missing or ONNX Runtime cannot load it.
    """
    ort = runtime()
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        session = ort.InferenceSession(str(path), sess_options=session_options(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: cannot load the model: {first}") from None
    lines = [str(path)]
    for title, args in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        rows = [(a.name, shape_text(list(a.shape)), _element_type(a.type)) for a in args]
        name_width = max((len(r[0]) for r in rows), default=0)
        shape_width = max((len(r[1]) for r in rows), default=0)
        lines.append(f"{title}:")
        lines += [f"  {n:<{name_width}}  {s:<{shape_width}}  {t}" for n, s, t in rows]
    return "\n".join(lines)


def check_fit(job: Job) -> list[str]:
    """Says whether the job's model takes the job's inputs, one finding per line.

    Opens the job's template, rectangles and features (:func:`composer.inputs.plan.open_plan`) and loads the model
    against them (:meth:`composer.inputs.plan.Plan.open_model`). The model is loaded on the CPU whatever
    ``model.provider`` says: shapes do not depend on the provider, and TensorRT could take minutes to build an
    engine for a check.

    With ``features.encoder``, the encoder is checked first (it takes ``[1, S]`` float32 PCM, returns rows, and
    ``rows_per_second / fps`` is a whole number); the audio is then encoded (or read from the cache) as a render
    would, and the model checked against the rows.

    Returns:
        When the model fits: the encoder's line (with an encoder), its matched image input, its feature input,
        its batch (fixed or dynamic) and its window against ``crop - 2 * border``. Otherwise a line that starts
        with :data:`DOES_NOT_FIT`, followed by the reason (after the encoder's line, where the encoder fits).

    Raises:
        JobError: The job's inputs are missing or do not fit each other (the model aside).
        SourceError: The template cannot be opened.
    """
    job = dataclasses.replace(job, model=dataclasses.replace(job.model, provider="cpu"))
    encoder = _encoder_lines(job) if job.features is not None and job.features.encoder is not None else []
    if any(line.startswith(DOES_NOT_FIT) for line in encoder):
        return encoder
    with open_plan(job) as plan:
        try:
            model = plan.open_model()
        except ModelError as exc:
            return [*encoder, f"{DOES_NOT_FIT}{exc}"]
        return [*encoder, *_fit_lines(job, model)]


def _encoder_lines(job: Job) -> list[str]:
    """Whether the job's audio encoder takes mono PCM and returns rows, and how many rows make a frame."""
    spec = job.features
    assert spec is not None and spec.encoder is not None
    try:
        encoder = AudioEncoder(spec.encoder)
    except ModelError as exc:
        return [f"{DOES_NOT_FIT}{exc} (see docs/models.md)"]
    with open_template(job.template.source) as source:
        fps = output_fps(job, source)
    try:
        g = rows_per_frame(spec.rows_per_second, fps)
    except JobError as exc:
        return [f"{DOES_NOT_FIT}{exc}"]
    first_in, first_out = encoder.session.get_inputs()[0], encoder.session.get_outputs()[0]
    out_shape = list(first_out.shape)
    width = out_shape[-1] if isinstance(out_shape[-1], int) and out_shape[-1] > 0 else None
    row = f"[{g}, {width}]" if width is not None else f"[{g}, D]"
    return [f"encoder: {spec.encoder.name} takes {first_in.name} {shape_text(list(first_in.shape))} PCM at "
            f"{spec.sample_rate} Hz and returns {first_out.name} {shape_text(out_shape)}, {spec.rows_per_second} rows "
            f"a second: {g} rows a frame at {fps} fps, so each frame's row is {row} and a window of "
            f"{spec.window} frames holds {spec.window * g * width if width else '?'} values"]


def _fit_lines(job: Job, model: Model) -> list[str]:
    spec = model.spec
    shapes = {i.name: list(i.shape) for i in model.session.get_inputs()}
    image_shape = shapes[model.inputs.image]
    lines = [
        f"image input: {model.inputs.image} {shape_text(image_shape)} takes {len(spec.inputs)} group(s) "
        f"{list(spec.inputs)} of 3 channels ({spec.color})"
    ]
    if model.inputs.feature is None or job.features is None:
        lines.append("feature input: none (the job has no [features])")
    else:
        feature_shape = shape_text(shapes[model.inputs.feature])
        lines.append(
            f"feature input: {model.inputs.feature} {feature_shape} takes a window of {job.features.window} "
            f"feature rows per frame"
        )
    if model.inputs.batch is None:
        lines.append(f"batch: dynamic (run.batch = {job.run.batch or 'auto'} frames per call)")
    else:
        lines.append(f"batch: fixed at {model.inputs.batch} (run.batch is ignored; the last batch is padded)")
    window = f"{_dim_text(image_shape[2])} x {_dim_text(image_shape[3])}"
    lines.append(
        f"model window: {window}, crop - 2 * border = {spec.crop} - 2 * {spec.border} = {spec.window}"
    )
    lines.append(f"fits: {spec.path.name} takes the job's inputs")
    return lines
