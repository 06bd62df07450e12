"""Rectangles from per-frame face landmarks, in the ``.lms`` layout of Ultralight-Digital-Human.

A landmarks folder holds one file per frame, ``0.lms``, ``1.lms``, ... (or ``frame_12.lms``): the last integer
in the name is the frame index, and each line is one ``x y`` point. The box of a frame is the lower face the
lip-sync renderers crop (0-based point numbers)::

    x1 = x of point 1      x2 = x of point 31      y1 = y of point 52      y2 = y1 + (x2 - x1)

:func:`boxes_from_landmarks` then optionally smooths, grows, squares, rounds and clamps those boxes, and
:func:`write_rects` stores them as a rectangles file that :func:`composer.inputs.rects.load_rects` reads.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from composer.config.limits import MAX_FRAMES
from composer.errors import JobError, OutputError

__all__ = ["MIN_POINTS", "boxes_from_landmarks", "read_landmarks", "write_rects"]

SUFFIX = ".lms"
# The box uses points 1, 31 and 52, so a file needs at least 53 of them.
_LEFT, _RIGHT, _TOP = 1, 31, 52
MIN_POINTS = _TOP + 1

_LAST_INTEGER = re.compile(r"(\d+)(?!.*\d)")

Box = tuple[int, int, int, int]


def read_landmarks(folder: Path, frames: int | None = None) -> list[np.ndarray | None]:
    """Reads a folder of ``.lms`` files into one ``[points, 2]`` float array per frame.

    Args:
        folder: The folder of ``.lms`` files; the last integer in a file's name is its frame index.
        frames: The number of frames to return (indices ``0 .. frames - 1``; files beyond are not read).
            None returns frames ``0 ..`` the largest index found, which must be below
            :data:`~composer.config.limits.MAX_FRAMES`.

    Returns:
        One entry per frame: the points of that frame, or None where the frame has no file.

    Raises:
        JobError: The folder is missing or has no ``.lms`` file, two files share an index, a file is
            unreadable or malformed (a line that is not two numbers, fewer than 53 points), or, without
            ``frames``, a file's number is too large to be a frame's.
    """
    if frames is not None and frames < 0:
        raise ValueError(f"frames must not be negative, got {frames}")
    files = _numbered_files(Path(folder))
    last = max(files)
    if frames is None and last >= MAX_FRAMES:
        # Before a list of `last` frames is made: a time stamp in a name would ask for trillions.
        raise JobError(f"{files[last]}: frame number {last} is beyond the longest template ({MAX_FRAMES} "
                       "frames); give the template's length (--frames or --template) to leave it out")
    count = last + 1 if frames is None else frames
    return [_read_points(files[t]) if t in files else None for t in range(count)]


def _numbered_files(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        raise JobError(f"{folder}: no such landmarks folder")
    numbered: dict[int, Path] = {}
    for file in sorted(folder.iterdir()):
        if file.name.startswith(".") or file.suffix.lower() != SUFFIX or not file.is_file():
            continue
        match = _LAST_INTEGER.search(file.stem)
        if match is None:
            raise JobError(f"{file}: a landmarks file's name must contain its frame number")
        index = int(match.group(1))
        if index in numbered:
            raise JobError(f"{file}: frame number {index} is also used by {numbered[index].name}")
        numbered[index] = file
    if not numbered:
        raise JobError(f"{folder}: the landmarks folder has no {SUFFIX} files")
    return numbered


def _read_points(file: Path) -> np.ndarray:
    try:
        text = file.read_text(encoding="utf-8-sig")  # a byte-order mark, if any, is not part of line 1
    except (OSError, UnicodeDecodeError) as exc:
        raise JobError(f"{file}: cannot read landmarks: {exc}") from None
    points: list[tuple[float, float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # a trailing blank line is common and harmless
        cells = line.split()
        try:
            x, y = (float(c) for c in cells)
        except ValueError:
            raise JobError(f"{file}: line {number}: expected two numbers 'x y', got {line.strip()!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise JobError(f"{file}: line {number}: coordinates must be finite, got {line.strip()!r}")
        points.append((x, y))
    if len(points) < MIN_POINTS:
        raise JobError(
            f"{file}: line {len(text.splitlines()) + 1}: the file ends after {len(points)} points, need at "
            f"least {MIN_POINTS} (the box uses points {_LEFT}, {_RIGHT} and {_TOP}, numbered from 0)"
        )
    return np.array(points, dtype=np.float64)


def boxes_from_landmarks(
    points: Sequence[np.ndarray | None],
    *,
    width: int | None,
    height: int | None,
    smooth: int = 1,
    margin: float = 0.0,
    square: bool = False,
) -> list[Box | None]:
    """Turns per-frame landmarks into rectangles ``(x1, y1, x2, y2)``, ``x2`` and ``y2`` exclusive.

    The steps, in order: the raw box of each frame (module docstring); the smoothing; the margin; the
    square; rounding to the nearest integers; clamping into the frame when its size is known.

    Args:
        points: Per frame, a ``[points, 2]`` array (at least 53 points) or None for a frame without a face.
        width: Frame width for clamping x into ``[0, width]``; None leaves x unclamped.
        height: Frame height for clamping y into ``[0, height]``; None leaves y unclamped.
        smooth: Frames in the centred moving average of each coordinate (frames ``t - smooth//2`` ..
            ``t - smooth//2 + smooth - 1``). Frames without landmarks are left out of the average, and the
            window is cut at the ends of the sequence. 1 disables it.
        margin: Grows each box by ``margin`` times its width on the left and on the right, and by ``margin``
            times its height at the top and at the bottom (0.1: 10% on every side). Negative values shrink it.
        square: Makes each box a square of its larger side, around its centre (clamping may cut it again).

    Returns:
        One entry per frame: the rectangle, or None for a frame without landmarks or whose box is empty
        (after clamping, or because point 31 is not right of point 1).

    Raises:
        ValueError: ``smooth`` < 1, ``margin`` <= -0.5, or a frame has fewer than 53 points.
    """
    if smooth < 1:
        raise ValueError(f"smooth must be at least 1, got {smooth}")
    if margin <= -0.5:
        raise ValueError(f"margin must be greater than -0.5 (which would leave nothing), got {margin}")
    raw = np.full((len(points), 4), np.nan)
    for t, frame in enumerate(points):
        if frame is None:
            continue
        if frame.ndim != 2 or frame.shape[0] < MIN_POINTS or frame.shape[1] < 2:
            raise ValueError(f"frame {t}: expected at least {MIN_POINTS} points of x, y, got shape {frame.shape}")
        x1, x2, y1 = frame[_LEFT, 0], frame[_RIGHT, 0], frame[_TOP, 1]
        raw[t] = (x1, y1, x2, y1 + x2 - x1)
    boxes = _moving_average(raw, smooth) if smooth > 1 else raw
    boxes = _grow(boxes, margin)
    if square:
        boxes = _squared(boxes)
    return [_finish(box, width, height) for box in boxes]


def _moving_average(boxes: np.ndarray, k: int) -> np.ndarray:
    """Centred mean over ``k`` frames of the rows that are not NaN; NaN rows stay NaN."""
    valid = ~np.isnan(boxes[:, 0])
    values = np.where(valid[:, None], boxes, 0.0)
    # Cumulative sums give every window's sum and count in one pass, however large k is.
    sums = np.vstack([np.zeros((1, 4)), np.cumsum(values, axis=0)])
    counts = np.concatenate([[0], np.cumsum(valid)])
    index = np.arange(len(boxes))
    lo = np.clip(index - k // 2, 0, len(boxes))
    hi = np.clip(index - k // 2 + k, 0, len(boxes))
    n = counts[hi] - counts[lo]
    smoothed = (sums[hi] - sums[lo]) / np.maximum(n, 1)[:, None]
    return np.where(valid[:, None], smoothed, np.nan)


def _grow(boxes: np.ndarray, margin: float) -> np.ndarray:
    if margin == 0:
        return boxes
    dx = margin * (boxes[:, 2] - boxes[:, 0])
    dy = margin * (boxes[:, 3] - boxes[:, 1])
    return np.stack([boxes[:, 0] - dx, boxes[:, 1] - dy, boxes[:, 2] + dx, boxes[:, 3] + dy], axis=1)


def _squared(boxes: np.ndarray) -> np.ndarray:
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    half = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)


def _finish(box: np.ndarray, width: int | None, height: int | None) -> Box | None:
    if np.isnan(box).any():
        return None
    x1, y1, x2, y2 = (int(v) for v in np.rint(box))
    if width is not None:
        x1, x2 = min(max(x1, 0), width), min(max(x2, 0), width)
    if height is not None:
        y1, y2 = min(max(y1, 0), height), min(max(y2, 0), height)
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def write_rects(path: Path, boxes: Sequence[Sequence[int] | None]) -> None:
    """Writes rectangles as a JSON list, one ``[x1, y1, x2, y2]`` or ``null`` per line and frame.

    The file appears under its name only when complete.

    Raises:
        OutputError: The file or its folder cannot be written.
    """
    path = Path(path)
    lines = ["null" if box is None else json.dumps([int(v) for v in box]) for box in boxes]
    text = "[\n" + ",\n".join(f"  {line}" for line in lines) + "\n]\n" if lines else "[]\n"
    temp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write rectangles: {exc.strerror or exc}") from exc
