"""BGR frames to BT.709 limited-range I420, the planes an H.264 encoder tagged BT.709 takes.

OpenCV's ``COLOR_BGR2YUV_I420`` uses the BT.601 matrix; a stream tagged BT.709 (the HD standard, and what
many players assume for untagged HD video) must be converted with the BT.709 one, or every saturated
colour shifts. FFmpeg's swscale (through PyAV's ``reformat``) is a little faster but truncates: about half
of its values come out one level low.

Y comes from every pixel; U and V from the mean of each 2x2 block (centre siting: H.264's default,
left siting, puts the chroma sample a quarter of a chroma sample to the left, a shift too small to matter
here). Every plane is computed in float32 and rounded once, half to even, without allocating: about 2 ms
for a 1280x720 frame on one core, where a version that made float32 copies of each frame took 7 ms.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

__all__ = ["BT709_MATRIX", "bgr_to_i420_bt709"]

_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB


def _matrix() -> np.ndarray:
    luma = np.array([_KB, _KG, _KR])  # in B, G, R order, as OpenCV stores pixels
    y = luma * 219 / 255
    u = (np.array([1.0, 0.0, 0.0]) - luma) / (2 * (1 - _KB)) * 224 / 255
    v = (np.array([0.0, 0.0, 1.0]) - luma) / (2 * (1 - _KR)) * 224 / 255
    return np.array([[*y, 16.0], [*u, 128.0], [*v, 128.0]], dtype=np.float32)


BT709_MATRIX = _matrix()
"""3 x 4 float32: rows Y, U, V; columns B, G, R (0-255) and the offset; limited range (Y 16-235, UV 16-240)."""

# One row each: OpenCV's transform has a fast path for one output channel, but not for two. The chroma rows
# take sums of 2x2 blocks, hence the quarter.
_LUMA = np.ascontiguousarray(BT709_MATRIX[:1])
_CHROMA = tuple(BT709_MATRIX[i : i + 1] * np.array([0.25, 0.25, 0.25, 1.0], np.float32) for i in (1, 2))

_scratch = threading.local()


def _buffers(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's uint16 work buffers for one frame size: row-pair sums, 2x2 sums, one chroma plane.

    Kept per thread and reused, so a frame converts without allocating (fresh multi-megabyte arrays land on
    fresh pages, and the page faults cost more than the arithmetic).
    """
    held = getattr(_scratch, "buffers", None)
    if held is None or held[0].shape[:2] != (height // 2, width):
        held = (
            np.empty((height // 2, width, 3), np.uint16),
            np.empty((height // 2, width // 2, 3), np.uint16),
            np.empty((height // 2, width // 2), np.uint16),
        )
        _scratch.buffers = held
    return held


def bgr_to_i420_bt709(frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Converts a BGR frame to BT.709 limited-range I420 (planar Y, then U, then V).

    Args:
        frame: uint8 H x W x 3 BGR with even H and W.
        out: Optional uint8 (H * 3 / 2) x W C-contiguous array to write into.

    Returns:
        ``out`` (or a new array): rows ``0 .. H-1`` hold Y, then U and V at half resolution, each packed
        row after row, the layout ``av.VideoFrame.from_ndarray(..., format="yuv420p")`` takes.

    Raises:
        ValueError: The frame is not uint8 H x W x 3 with even sides, or ``out`` does not fit it.
    """
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 frame, got {frame.dtype} {frame.shape}")
    height, width = frame.shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"4:2:0 needs even sides, got {width}x{height}")
    shape = (height * 3 // 2, width)
    if out is None:
        out = np.empty(shape, np.uint8)
    elif out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous uint8 array of shape {shape}, got {out.dtype} {out.shape}")
    plane = height * width // 4
    flat = out.reshape(-1)
    chroma_planes = (
        flat[4 * plane : 5 * plane].reshape(height // 2, width // 2),
        flat[5 * plane :].reshape(height // 2, width // 2),
    )
    frame = np.ascontiguousarray(frame)
    # OpenCV's one-channel transform of uint8 pixels computes in float32 and rounds once, half to even,
    # straight into the Y plane.
    cv2.transform(frame, _LUMA, dst=out[:height])
    # The 2x2 sums fit uint16 exactly; summing before the matrix (it is linear) makes the chroma work a
    # quarter of the size. Two strided additions: row pairs, then column pairs (as 6-value rows).
    rows, sums, chroma = _buffers(height, width)
    cv2.add(frame[0::2], frame[1::2], dst=rows, dtype=cv2.CV_16U)
    paired = rows.reshape(-1, 6)
    cv2.add(paired[:, :3], paired[:, 3:], dst=sums.reshape(-1, 3))
    for matrix, plane_out in zip(_CHROMA, chroma_planes, strict=True):
        cv2.transform(sums, matrix, dst=chroma)  # float32, rounded half to even; always within 16-240
        np.copyto(plane_out, chroma, casting="unsafe")
    return out
