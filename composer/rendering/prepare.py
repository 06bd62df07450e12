"""Per-frame preparation: crop the rectangle, resize it, stack the model's image input (docs/design.md 3.3-3.4).

Plain functions of one frame; the reference renderer and the processor call the same ones, which is what
makes their outputs bit-identical.
"""

from __future__ import annotations

import cv2
import numpy as np

from composer.config.job import ModelSpec

INTERPOLATION = {
    "linear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "cubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
}


def crop_region(frame: np.ndarray, rect: tuple[int, int, int, int], spec: ModelSpec,
                out: np.ndarray | None = None) -> np.ndarray:
    """``C``: the rectangle of ``frame`` resized to ``crop x crop`` (uint8, BGR)."""
    x1, y1, x2, y2 = rect
    size = (spec.crop, spec.crop)
    return cv2.resize(frame[y1:y2, x1:x2], size, dst=out, interpolation=INTERPOLATION[spec.resize_in])


def fill_image(crop: np.ndarray, spec: ModelSpec, out: np.ndarray) -> np.ndarray:
    """Write the model's image input for one crop into ``out`` (float32, ``channels x window x window``).

    Each group of ``spec.inputs`` is the model window ``M = crop[b:-b, b:-b]`` in the model's colour order;
    ``"masked"`` has the mask rectangle zeroed. Values are ``float32 / 255``.
    """
    b = spec.border
    window = crop[b : spec.crop - b, b : spec.crop - b]
    planes = cv2.split(window)  # contiguous planes: dividing the interleaved pixels in place took twice as long
    if spec.color == "rgb":
        planes = planes[::-1]
    for g, group in enumerate(spec.inputs):
        target = out[3 * g : 3 * g + 3]
        for plane, channel in zip(planes, target):
            np.divide(plane, np.float32(255), out=channel, dtype=np.float32)
        if group == "masked" and spec.mask is not None:
            x, y, w, h = spec.mask
            target[:, y : y + h, x : x + w] = 0
    return out


def model_image(crop: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The model's image input for one crop, in a new array."""
    out = np.empty((spec.image_channels, spec.window, spec.window), dtype=np.float32)
    return fill_image(crop, spec, out)
