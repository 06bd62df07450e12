"""Models whose output breaks the model contract (docs/design.md 3.7), built in code for the checks' tests.

Each takes ``image`` [B, C, W, W] and ``audio`` [B, *feature_shape] like the zoo's models and returns
``output`` [B, 3, W, W] from ``Sigmoid(image[:, 0:3])``, spoilt as ``fault`` says:

- ``"nan"``: times ``f / f``, where ``f`` is element ``probe`` of the sample's flattened features: NaN where
  ``f == 0``, unchanged elsewhere.
- ``"inf"``: ``Max(..., 1 / f)``: inf where ``f == 0``, unchanged where ``f < 0``.
- ``"uint8"``: times 255, cast to uint8 (a model that returns bytes 0-255).
- ``"double"``: cast to float64 (a float all the same).
- ``"fails"``: reshaped through ``[7, -1]``, which ONNX Runtime fails to run unless the batch's size divides by 7
  (and then logs an error of its own).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FAULTS = ("nan", "inf", "uint8", "double", "fails")
_TYPES = {"uint8": TensorProto.UINT8, "double": TensorProto.DOUBLE}


def build_faulty(path: Path, *, fault: str, window: int, in_channels: int = 6,
                 feature_shape: tuple[int, ...] = (1,), probe: int = 0, batch: int | None = None) -> Path:
    """Writes the model to ``path`` and returns ``path``."""
    assert fault in FAULTS, fault
    dim: int | str = batch if batch is not None else "batch"
    consts = {
        "starts": np.array([0], np.int64), "ends": np.array([3], np.int64), "axes": np.array([1], np.int64),
        "flat": np.array([0, -1], np.int64), "at": np.array([probe], np.int64),
        "at_end": np.array([probe + 1], np.int64), "one_axis": np.array([1], np.int64),
        "grid": np.array([-1, 1, 1, 1], np.int64), "k255": np.array(255, np.float32),
        "sevens": np.array([7, -1], np.int64), "back": np.array([-1, 3, window, window], np.int64),
    }
    nodes = [
        helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["rgb"]),
        helper.make_node("Sigmoid", ["rgb"], ["good"]),
        helper.make_node("Reshape", ["audio", "flat"], ["features"]),
        helper.make_node("Slice", ["features", "at", "at_end", "one_axis"], ["f_column"]),
        helper.make_node("Reshape", ["f_column", "grid"], ["f"]),
    ]
    if fault == "nan":
        nodes += [helper.make_node("Div", ["f", "f"], ["ratio"]),
                  helper.make_node("Mul", ["good", "ratio"], ["output"])]
    elif fault == "inf":
        nodes += [helper.make_node("Reciprocal", ["f"], ["inverse"]),
                  helper.make_node("Max", ["good", "inverse"], ["output"])]
    elif fault == "uint8":
        nodes += [helper.make_node("Mul", ["good", "k255"], ["scaled"]),
                  helper.make_node("Cast", ["scaled"], ["output"], to=TensorProto.UINT8)]
    elif fault == "double":
        nodes += [helper.make_node("Cast", ["good"], ["output"], to=TensorProto.DOUBLE)]
    else:
        nodes += [helper.make_node("Reshape", ["good", "sevens"], ["odd"]),
                  helper.make_node("Reshape", ["odd", "back"], ["output"])]
    inputs = [
        helper.make_tensor_value_info("image", TensorProto.FLOAT, [dim, in_channels, window, window]),
        helper.make_tensor_value_info("audio", TensorProto.FLOAT, [dim, *feature_shape]),
    ]
    output = helper.make_tensor_value_info("output", _TYPES.get(fault, TensorProto.FLOAT), [dim, 3, window, window])
    initializers = [numpy_helper.from_array(value, name) for name, value in consts.items()]
    graph = helper.make_graph(nodes, f"faulty_{fault}", inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)
