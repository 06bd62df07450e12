"""A contact sheet: sample frames of a template with their rectangles drawn, tiled into one image.

It is how a person checks a rectangles file before rendering: a green box where the model will paint, a red
cross on frames that pass through untouched, the frame index in the corner of every thumbnail.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from composer.config.limits import MAX_SHEET_PIXELS, MAX_SHEET_SIDE
from composer.errors import JobError, OutputError
from composer.inputs.rects import load_rects
from composer.inputs.sources import open_template

__all__ = ["contact_sheet", "sample_indices"]

_GREEN = (0, 200, 0)
_RED = (0, 0, 230)
_WHITE = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_ENCODINGS = {".png": [cv2.IMWRITE_PNG_COMPRESSION, 3], ".jpg": [cv2.IMWRITE_JPEG_QUALITY, 90]}
_ENCODINGS[".jpeg"] = _ENCODINGS[".jpg"]


def sample_indices(count: int, samples: int) -> list[int]:
    """``samples`` frame indices spread evenly over ``0 .. count - 1``, first and last included; all if fewer."""
    if count <= samples:
        return list(range(count))
    if samples == 1:
        return [0]
    # Spacing is at least one frame when samples <= count, so rounding never merges two picks.
    return [int(round(v)) for v in np.linspace(0, count - 1, samples)]


def contact_sheet(
    source_path: Path,
    rects_path: Path,
    out: Path,
    *,
    columns: int = 6,
    samples: int = 24,
    thumb_width: int = 320,
) -> tuple[int, int]:
    """Draws sample frames of a template with their rectangles into one grid image.

    The template is decoded in one sequential pass up to the last sampled frame. Each thumbnail is
    ``thumb_width`` x ``round(thumb_width * H / W)``; the sheet has ``min(columns, n)`` columns and
    ``ceil(n / columns)`` rows for ``n`` sampled frames, with unused cells black.

    Args:
        source_path: The template: a video, a folder of numbered images or one image.
        rects_path: Its rectangles file (JSON or CSV, one entry per template frame).
        out: The image to write; ``.png``, ``.jpg`` or ``.jpeg``. Its folder is created.
        columns: Thumbnails per row.
        samples: Frames to show, spread evenly over the template (all of them if it has fewer).
        thumb_width: Width of each thumbnail in pixels.

    Returns:
        The sheet's ``(width, height)`` in pixels.

    Raises:
        ValueError: ``columns``, ``samples`` or ``thumb_width`` is below 1.
        JobError: The rectangles file does not fit the template, ``out`` has another suffix, or the sheet would
            be wider or taller than 65,000 pixels or hold more than 2**26.
        SourceError: The template cannot be read.
        OutputError: The image cannot be written.
    """
    for name, value in (("columns", columns), ("samples", samples), ("thumb_width", thumb_width)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    out = Path(out)
    if out.suffix.lower() not in _ENCODINGS:
        raise JobError(f"{out}: the contact sheet must be a .png, .jpg or .jpeg file")
    with open_template(source_path) as source:
        rects = load_rects(rects_path, source.count)
        picks = sample_indices(source.count, samples)
        size = (thumb_width, max(1, round(thumb_width * source.height / source.width)))
        _check_sheet(len(picks), min(columns, len(picks)), size)
        wanted = set(picks)
        thumbs = [
            _thumbnail(frame, rects.get(t), t, size, source.width)
            for t, frame in enumerate(source.frames(0, picks[-1] + 1))
            if t in wanted
        ]
    sheet = _tile(thumbs, min(columns, len(thumbs)), size)
    _write_image(out, sheet)
    return sheet.shape[1], sheet.shape[0]


def _check_sheet(count: int, columns: int, size: tuple[int, int]) -> None:
    """Refuse, before decoding, a sheet that OpenCV could not allocate or JPEG could not hold."""
    width, height = columns * size[0], math.ceil(count / columns) * size[1]
    if max(width, height) > MAX_SHEET_SIDE or width * height > MAX_SHEET_PIXELS:
        raise JobError(f"a contact sheet of {count} thumbnails {size[0]}x{size[1]} in {columns} columns would be "
                       f"{width}x{height} pixels (at most {MAX_SHEET_SIDE} a side and 2**26 in all); "
                       "use fewer --samples or a smaller --width")


def _thumbnail(frame: np.ndarray, rect: tuple[int, int, int, int] | None, index: int, size: tuple[int, int],
               frame_width: int) -> np.ndarray:
    """The frame scaled to ``size`` with its rectangle (or a red cross) and its index drawn on top."""
    # Drawn after scaling, so lines and labels look the same whatever the template's resolution.
    thumb = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    width, height = size
    scale = width / frame_width
    font_scale = max(0.3, width / 480)
    if rect is None:
        cv2.line(thumb, (0, 0), (width - 1, height - 1), _RED, 2)
        cv2.line(thumb, (0, height - 1), (width - 1, 0), _RED, 2)
        _label(thumb, "no rect", (4, height - 6), font_scale, _RED)
    else:
        x1, y1, x2, y2 = (round(v * scale) for v in rect)
        cv2.rectangle(thumb, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), _GREEN, 2)
    _label(thumb, str(index), (4, 4 + cv2.getTextSize("0", _FONT, font_scale, 1)[0][1]), font_scale, _WHITE)
    return thumb


def _label(image: np.ndarray, text: str, origin: tuple[int, int], font_scale: float,
           color: tuple[int, int, int]) -> None:
    # A dark outline keeps the text legible on any background.
    cv2.putText(image, text, origin, _FONT, font_scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, _FONT, font_scale, color, 1, cv2.LINE_AA)


def _tile(thumbs: list[np.ndarray], columns: int, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    rows = math.ceil(len(thumbs) / columns)
    sheet = np.zeros((rows * height, columns * width, 3), dtype=np.uint8)
    for n, thumb in enumerate(thumbs):
        row, column = divmod(n, columns)
        sheet[row * height:(row + 1) * height, column * width:(column + 1) * width] = thumb
    return sheet


def _write_image(out: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(out.suffix.lower(), image, _ENCODINGS[out.suffix.lower()])
    if not ok:
        raise OutputError(f"{out}: OpenCV could not encode the contact sheet")
    temp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(encoded.tobytes())
        os.replace(temp, out)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise OutputError(f"{out}: cannot write the contact sheet: {exc.strerror or exc}") from exc
