"""IO binding: a session's inputs and output bound once to buffers on the provider's device and reused for every
call (docs/gpu.md).

``session.run`` allocates the output and, on an accelerator, device buffers for every input on each call, and
copies them both ways inside the call. A :class:`BoundCalls` allocates them once per session (one lane), for
calls of one fixed batch (:class:`composer.model.session.Model` pads the last batch), copies each batch into
the bound input in place and reads the output back once the call is done. On the CPU provider the buffers are
host memory and the same code path runs, which is how CI checks it: its output equals ``session.run``'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class BoundCalls:
    """Calls of one session on buffers allocated once.

    Args:
        session: the ``InferenceSession`` (owned by one thread, as the lane's model is).
        inputs: input name -> (full shape with the batch, dtype).
        output: (name, full shape with the batch, dtype) of the output composer reads.
        device: ``"cpu"`` or ``"cuda"``; ``device_id`` the accelerator's number.
    """

    def __init__(self, session: Any, ort: Any, inputs: dict[str, tuple[tuple[int, ...], np.dtype]],
                 output: tuple[str, tuple[int, ...], np.dtype], device: str, device_id: int) -> None:
        self.session, self.device = session, device
        self.binding = session.io_binding()
        self.inputs = {}
        for name, (shape, dtype) in inputs.items():
            value = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, device, device_id)
            self.binding.bind_ortvalue_input(name, value)
            self.inputs[name] = value
        name, shape, dtype = output
        self.output = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, device, device_id)
        self.binding.bind_ortvalue_output(name, self.output)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The output for ``feed`` (each array of its bound buffer's shape and dtype), as a host array of its own.

        Raises:
            Exception: ONNX Runtime's own, as ``session.run`` raises them.
        """
        for name, array in feed.items():
            self.inputs[name].update_inplace(np.ascontiguousarray(array))
        self.binding.synchronize_inputs()
        self.session.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()
        out = self.output.numpy()
        # On the CPU the array may share the bound buffer, which the next call overwrites.
        return np.array(out, copy=True) if self.device == "cpu" else out
