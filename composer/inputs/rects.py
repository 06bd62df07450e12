"""Rectangles: one region per template frame, or none (docs/design.md section 1).

Accepted files: a JSON list with one entry per frame, a JSON object keyed by the frame index, or a CSV with
the header ``frame,x1,y1,x2,y2``. An entry is ``[x1, y1, x2, y2]``, ``{"x1": .., "y1": .., "x2": .., "y2": ..}``
or ``null`` (the frame passes through unchanged); ``x2`` and ``y2`` are exclusive. Files are UTF-8, with or without
the byte-order mark that spreadsheet programs write.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from composer.config.checks import shown
from composer.config.limits import check_nesting
from composer.errors import JobError

_KEYS = ("x1", "y1", "x2", "y2")
_LIMIT = 2**31  # coordinates are stored as int32


@dataclass(frozen=True)
class Rects:
    """Rectangles of a template, as an int32 array ``[T, 4]`` and a validity mask ``[T]``."""

    boxes: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return len(self.valid)

    def get(self, t: int) -> tuple[int, int, int, int] | None:
        """The rectangle of template frame ``t``, or None when it passes through."""
        if not self.valid[t]:
            return None
        x1, y1, x2, y2 = (int(v) for v in self.boxes[t])
        return x1, y1, x2, y2

    def check_bounds(self, width: int, height: int, path: Path) -> None:
        """Raise JobError naming the first rectangle outside a ``width`` x ``height`` frame or empty."""
        x1, y1, x2, y2 = self.boxes.T
        bad = self.valid & ~((x1 >= 0) & (x1 < x2) & (x2 <= width) & (y1 >= 0) & (y1 < y2) & (y2 <= height))
        if bad.any():
            t = int(np.flatnonzero(bad)[0])
            raise JobError(
                f"{path}: frame {t}: rectangle {self.boxes[t].tolist()} is empty or outside the "
                f"{width}x{height} frame (need 0 <= x1 < x2 <= {width}, 0 <= y1 < y2 <= {height})"
            )


def _entry(value: Any, where: str) -> tuple[int, int, int, int] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        if set(value) != set(_KEYS):
            raise JobError(f"{where}: expected keys x1, y1, x2, y2, got {sorted(value)}")
        value = [value[k] for k in _KEYS]
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise JobError(f"{where}: expected [x1, y1, x2, y2] or null, got {shown(value)}")
    numbers = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v):
            raise JobError(f"{where}: coordinates must be whole numbers, got {shown(value)}")
        if not -_LIMIT <= v < _LIMIT:
            raise JobError(f"{where}: coordinate {shown(v)} is out of range")
        numbers.append(int(v))
    return numbers[0], numbers[1], numbers[2], numbers[3]


def _from_json(path: Path) -> dict[int, Any]:
    text = path.read_text(encoding="utf-8-sig")
    check_nesting(text, str(path), toml=False)  # json recurses once per level
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JobError(f"{path}: not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # an integer of more than 4300 digits
        raise JobError(f"{path}: not valid rectangles: {exc}") from None
    if isinstance(data, list):
        return dict(enumerate(data))
    if isinstance(data, dict):
        entries = {}
        for key, value in data.items():
            try:
                index = int(key)
            except ValueError:
                raise JobError(f"{path}: key {shown(key)} is not a frame index") from None
            if index in entries:
                raise JobError(f"{path}: frame {index} has two entries")
            entries[index] = value
        return entries
    raise JobError(f"{path}: expected a JSON list or object of rectangles, got {type(data).__name__}")


def _from_csv(path: Path) -> dict[int, Any]:
    entries: dict[int, Any] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = csv.reader(handle)
        header = [cell.strip() for cell in next(rows, [])]
        if header != ["frame", *_KEYS]:
            raise JobError(f"{path}: expected the CSV header frame,x1,y1,x2,y2")
        for line, row in enumerate(rows, start=2):
            cells = [cell.strip() for cell in row]
            if not cells or cells == [""]:
                continue
            if len(cells) != 5:
                raise JobError(f"{path}: line {line}: expected 5 values, got {len(cells)}")
            try:
                index = int(cells[0])
                box = None if all(c in ("", "null") for c in cells[1:]) else [float(c) for c in cells[1:]]
            except ValueError:
                raise JobError(f"{path}: line {line}: expected integers, got {','.join(cells)}") from None
            if index in entries:
                raise JobError(f"{path}: line {line}: frame {index} has two entries")
            entries[index] = box
    return entries


def load_rects(path: Path, frames: int) -> Rects:
    """Load the rectangles of a ``frames``-frame template; every frame needs an entry.

    Raises:
        JobError: the file is missing or malformed, an entry is bad, or a frame has no entry.
    """
    path = Path(path)
    if not path.is_file():
        raise JobError(f"{path}: no such rectangles file")
    try:
        entries = _from_csv(path) if path.suffix.lower() == ".csv" else _from_json(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise JobError(f"{path}: cannot read rectangles: {exc}") from None
    missing = [t for t in range(frames) if t not in entries]
    if missing:
        raise JobError(
            f"{path}: no rectangle for frame {missing[0]} ({len(entries)} entries for a {frames}-frame "
            "template; write null for a frame to pass it through)"
        )
    extra = sorted(t for t in entries if not 0 <= t < frames)
    if extra:
        raise JobError(f"{path}: entry for frame {extra[0]}, but the template has {frames} frames")
    boxes = np.zeros((frames, 4), dtype=np.int32)
    valid = np.zeros(frames, dtype=bool)
    for t in range(frames):
        box = _entry(entries[t], f"{path}: frame {t}")
        if box is not None:
            boxes[t] = box
            valid[t] = True
    return Rects(boxes=boxes, valid=valid)
