"""Paste a prediction back into its full frame (docs/design.md 3.7-3.9).

The feathering alpha is defined here, once, in :func:`feather_alpha`.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from composer.config.job import CompositeSpec, ModelSpec
from composer.rendering.prepare import INTERPOLATION


def prediction_to_bgr(prediction: np.ndarray, color: str, out: np.ndarray | None = None) -> np.ndarray:
    """A ``3 x S x S`` prediction in [0, 1] as ``S x S x 3`` BGR uint8: ``rint(clip(P * 255, 0, 255))``.

    Args:
        prediction: the model's output for one frame.
        color: the model's channel order, ``"bgr"`` or ``"rgb"``.
        out: an ``S x S x 3`` uint8 array (or view) to write into; a new one when None.
    """
    planes = list(prediction[::-1] if color == "rgb" else prediction)  # B, G, R
    shape = (*prediction.shape[1:], len(planes))
    scaled = np.empty(shape, np.float32)
    cv2.merge([np.asarray(plane, np.float32) for plane in planes], dst=scaled)  # interleaves, exactly
    np.multiply(scaled, np.float32(255), out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    np.rint(scaled, out=scaled)
    if out is None:
        return scaled.astype(np.uint8)
    np.copyto(out, scaled, casting="unsafe")
    return out


@functools.lru_cache(maxsize=64)
def feather_alpha(width: int, height: int, feather: int) -> np.ndarray:
    """Blend weight of the prediction over a ``height x width`` rectangle, ``height x width x 1`` float32.

    A pixel ``d`` pixels inside the nearest edge (``d = 0`` on the edge) gets ``min(1, (d + 1) / (feather + 1))``:
    the outermost ring shows a little of the prediction and everything ``feather`` or more pixels inside shows
    only the prediction. ``feather = 0`` gives all ones, a hard paste.
    """

    def ramp(n: int) -> np.ndarray:
        d = np.minimum(np.arange(n), np.arange(n)[::-1]).astype(np.float32)
        return np.minimum(np.float32(1), (d + 1) / np.float32(feather + 1))

    alpha = np.minimum(ramp(height)[:, None], ramp(width)[None, :])[..., None]
    alpha.setflags(write=False)
    return alpha


def composite(frame: np.ndarray, crop: np.ndarray, prediction: np.ndarray,
              rect: tuple[int, int, int, int], model: ModelSpec, blend: CompositeSpec,
              out: np.ndarray | None = None) -> np.ndarray:
    """The output frame: ``frame`` with its rectangle replaced by the crop carrying the prediction.

    Args:
        frame: the template frame ``F`` (not modified).
        crop: its resized crop ``C`` (not modified: the cache shares it between output frames).
        prediction: the model's ``3 x S x S`` output for this frame.
        rect: ``(x1, y1, x2, y2)``.
        model: the job's model section (border, colour, interpolation).
        blend: the job's composite section.
        out: a buffer of ``frame``'s shape to write into; a new one when None.
    """
    x1, y1, x2, y2 = rect
    b = model.border
    patched = crop.copy()
    prediction_to_bgr(prediction, model.color, out=patched[b : model.crop - b, b : model.crop - b])
    pasted = cv2.resize(patched, (x2 - x1, y2 - y1), interpolation=INTERPOLATION[model.resize_out])
    if out is None:
        out = frame.copy()
    else:
        np.copyto(out, frame)
    target = out[y1:y2, x1:x2]
    if blend.blend == "feather":
        _feather(frame[y1:y2, x1:x2], pasted, feather_alpha(x2 - x1, y2 - y1, blend.feather), target)
    else:
        target[...] = pasted
    return out


def _feather(region: np.ndarray, pasted: np.ndarray, alpha: np.ndarray, target: np.ndarray) -> None:
    """``target = rint(R + (P - R) * alpha)`` in float32, from the original region ``R`` and the paste ``P``."""
    below, mixed = region.astype(np.float32), pasted.astype(np.float32)
    np.subtract(mixed, below, out=mixed)
    np.multiply(mixed, alpha, out=mixed)
    np.add(below, mixed, out=mixed)
    np.rint(mixed, out=mixed)
    np.copyto(target, mixed, casting="unsafe")
