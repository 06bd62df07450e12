"""Checks of the job file's values: each takes the key's name, the value and the job file's folder, and returns
the value resolved or raises a :class:`~composer.errors.JobError` that names the key."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

from composer.errors import JobError

INPUT_GROUPS = ("crop", "masked")

Check = Callable[[str, Any, Path], Any]


def fail(key: str, message: str) -> JobError:
    return JobError(f"job key {key}: {message}")


def type_name(value: Any) -> str:
    return type(value).__name__


def integer(minimum: int | None = None) -> Check:
    def check(key: str, value: Any, base: Path) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(key, f"expected an integer, got {type_name(value)} {value!r}")
        if minimum is not None and value < minimum:
            raise fail(key, f"must be >= {minimum}, got {value}")
        return value

    return check


def choice(options: Iterable[str]) -> Check:
    options = tuple(options)

    def check(key: str, value: Any, base: Path) -> str:
        if not isinstance(value, str) or value not in options:
            raise fail(key, f"expected one of {', '.join(options)}; got {value!r}")
        return value

    return check


def optional_file_path(key: str, value: Any, base: Path) -> Path | None:
    # An empty string switches an optional output off, e.g. `--set output.video=`.
    return None if value == "" else file_path(key, value, base)


def optional_output_file(key: str, value: Any, base: Path) -> Path | None:
    # A trailing slash names a folder; as a Path it would be dropped and the video written as a file of that name.
    if isinstance(value, str) and value.endswith(("/", os.sep)):
        raise fail(key, f"{value!r} ends with a slash, which names a folder; give the file's name, "
                        f"e.g. {value + 'result.mp4'!r}")
    return optional_file_path(key, value, base)


def file_path(key: str, value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise fail(key, f"expected a path (string), got {type_name(value)} {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def fraction_01(key: str, value: Any, base: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise fail(key, f"expected a number in (0, 1], got {value!r}")
    return float(value)


def fps(key: str, value: Any, base: Path) -> Fraction:
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, float):
            fps = Fraction(value).limit_denominator(1001)
        elif isinstance(value, (int, str)):
            fps = Fraction(str(value).strip())
        else:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        raise fail(key, f"expected a frame rate such as 25 or \"30000/1001\", got {value!r}") from None
    if fps <= 0:
        raise fail(key, f"must be positive, got {value!r}")
    return fps


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(|b|kb|mb|gb|tb|kib|mib|gib|tib)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes in a size such as ``"1GB"`` (10**9), ``"512MiB"`` (2**29) or ``"123456"``."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_frame_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` as (1280, 720); both even and at least 64, as the demo and benchmarks need.

    Raises:
        ValueError: saying what is wrong with ``text``.
    """
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}") from None
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and at least 64, got {text!r}")
    return width, height


def byte_size(key: str, value: Any, base: Path) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        size = value if isinstance(value, int) else parse_size(str(value))
    except ValueError:
        raise fail(key, f"expected a size such as \"1GB\" or \"512MiB\", got {value!r}") from None
    if size <= 0:
        raise fail(key, f"must be positive, got {value!r}")
    return size


def auto_or(check: Check) -> Check:
    def wrapped(key: str, value: Any, base: Path) -> Any:
        return None if value == "auto" else check(key, value, base)

    return wrapped


def inputs(key: str, value: Any, base: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(v in INPUT_GROUPS for v in value):
        raise fail(key, f"expected a non-empty list of {' / '.join(INPUT_GROUPS)}, got {value!r}")
    return tuple(value)


def mask(key: str, value: Any, base: Path) -> tuple[int, int, int, int]:
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or value[2] <= 0
        or value[3] <= 0
        or min(value[:2]) < 0
    ):
        raise fail(key, f"expected [x, y, w, h] with x, y >= 0 and w, h > 0, got {value!r}")
    return (value[0], value[1], value[2], value[3])


def string(key: str, value: Any, base: Path) -> str:
    if not isinstance(value, str) or not value:
        raise fail(key, f"expected a string, got {type_name(value)} {value!r}")
    return value
