"""A float16 copy of a float32 model, for accelerators that run half precision faster (docs/gpu.md).

The conversion is ONNX Runtime's own (``onnxruntime.transformers.float16``, shipped in both the ``onnxruntime``
and ``onnxruntime-gpu`` wheels, and maintained with them; it is the float16 converter of onnxconverter-common):
every float32 initialiser and operator becomes float16, except the operators that have no float16 form, which
it wraps in casts. The model's inputs and outputs stay float32 by default (``keep_io_types``), so that the
converted model takes what the float32 one took; composer also feeds a model whose inputs are float16 with
float16 values. Whether the result is good enough is measured, not assumed: ``composer precision``
(:mod:`composer.measure.precision`).
"""

from __future__ import annotations

from pathlib import Path

from composer.errors import ModelError
from composer.model.providers import runtime
from composer.model.signature import check_external_data


def convert_to_fp16(source: Path, target: Path, keep_io_types: bool = True) -> Path:
    """Write a float16 copy of ``source`` to ``target``.

    Args:
        source: a float32 ONNX model.
        target: where to write the copy (written under a temporary name and renamed into place).
        keep_io_types: keep the graph's inputs and outputs float32 (casts at the edges).

    Raises:
        ModelError: ``source`` is not a readable ONNX model, or the converter fails on it.
    """
    import onnx

    runtime()  # exactly one ONNX Runtime build, or one line saying what to do
    from onnxruntime.transformers.float16 import convert_float_to_float16

    source, target = Path(source), Path(target)
    if not source.is_file():
        raise ModelError(f"{source}: no such model file")
    model = check_external_data(source)
    try:
        onnx.load_external_data_for_model(model, str(source.parent))
    except Exception as exc:  # protobuf raises assorted errors
        raise ModelError(f"{source}: cannot read the model: {type(exc).__name__}: {exc}") from None
    try:
        converted = convert_float_to_float16(model, keep_io_types=keep_io_types)
    except Exception as exc:  # the converter raises assorted errors on graphs it cannot handle
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{source}: the float16 conversion failed: {first}") from None
    partial = target.with_name(f".{target.name}.tmp")
    try:
        onnx.save(converted, str(partial))
        partial.replace(target)
    except (OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise ModelError(f"{target}: cannot write the converted model: {exc}") from None
    return target
