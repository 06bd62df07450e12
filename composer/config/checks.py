"""Checks of the job file's values: each takes the key's name, the value and the job file's folder, and returns
the value resolved or raises a :class:`~composer.errors.JobError` that names the key.

Numbers are bounded by :mod:`composer.config.limits`; a bool is not a number here (``True`` is an ``int`` to
Python), a float is not an integer (``1e400`` reads as ``inf``), and NaN and infinities are refused.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

from composer.config.limits import (
    MAX_BYTES,
    MAX_FPS,
    MAX_INPUT_GROUPS,
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    MAX_RATE_TERM,
    MAX_SIDE,
    MAX_THREADS,
    MIN_FPS,
)
from composer.errors import JobError

INPUT_GROUPS = ("crop", "masked")

Check = Callable[[str, Any, Path], Any]

# Values quoted in messages are cut short, so a huge or deeply nested value is still one short line.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxlong, _SHOWN.maxother = 2, 40, 40, 40
_SHOWN.maxlist = _SHOWN.maxdict = _SHOWN.maxtuple = 6


def fail(key: str, message: str) -> JobError:
    return JobError(f"job key {key}: {message}")


def type_name(value: Any) -> str:
    return type(value).__name__


def shown(value: Any) -> str:
    """``repr(value)``, cut to a few dozen characters and two levels of nesting."""
    return _SHOWN.repr(value)


def integer(minimum: int, maximum: int, why: str = "") -> Check:
    """An integer in ``minimum .. maximum``; ``why`` says where the maximum comes from."""

    def check(key: str, value: Any, base: Path) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(key, f"expected an integer, got {type_name(value)} {shown(value)}")
        if value < minimum:
            raise fail(key, f"must be >= {minimum}, got {shown(value)}")
        if value > maximum:
            raise fail(key, f"must be <= {maximum}{f' ({why})' if why else ''}, got {shown(value)}")
        return value

    return check


def number(minimum: float, maximum: float) -> Check:
    """A finite number (integer or float) in ``minimum .. maximum``, as a float."""

    def check(key: str, value: Any, base: Path) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise fail(key, f"expected a number, got {type_name(value)} {shown(value)}")
        if not minimum <= value <= maximum:
            raise fail(key, f"must be from {minimum:g} to {maximum:g}, got {shown(value)}")
        return float(value)

    return check


def choice(options: Iterable[str]) -> Check:
    options = tuple(options)

    def check(key: str, value: Any, base: Path) -> str:
        if not isinstance(value, str) or value not in options:
            raise fail(key, f"expected one of {', '.join(options)}; got {shown(value)}")
        return value

    return check


def optional_file_path(key: str, value: Any, base: Path) -> Path | None:
    # An empty string switches an optional output off, e.g. `--set output.video=`.
    return None if value == "" else file_path(key, value, base)


def optional_output_file(key: str, value: Any, base: Path) -> Path | None:
    # A trailing slash names a folder; as a Path it would be dropped and the video written as a file of that name.
    if isinstance(value, str) and value.endswith(("/", os.sep)):
        raise fail(key, f"{shown(value)} ends with a slash, which names a folder; give the file's name, "
                        f"e.g. {shown(value + 'result.mp4')}")
    return optional_file_path(key, value, base)


def file_path(key: str, value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value or "\0" in value:  # no file name holds a NUL
        raise fail(key, f"expected a path (string), got {type_name(value)} {shown(value)}")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else (base / path)
    if len(os.fsencode(path)) > MAX_PATH_BYTES or any(len(os.fsencode(p)) > MAX_NAME_BYTES for p in path.parts):
        raise fail(key, f"path too long (at most {MAX_PATH_BYTES} bytes, {MAX_NAME_BYTES} a name): {shown(str(path))}")
    return path


def fraction_01(key: str, value: Any, base: Path) -> float:
    # NaN fails the comparison too.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise fail(key, f"expected a number in (0, 1], got {shown(value)}")
    return float(value)


# A rate as TOML or a user writes it: "25", "29.97" or "30000/1001" (no exponent: Fraction("1e999999999")
# would compute the number).
_RATE = re.compile(r"^\s*\d{1,12}(?:\.\d{1,12})?(?:/\d{1,12})?\s*$")


def fps(key: str, value: Any, base: Path) -> Fraction:
    if isinstance(value, float) and not math.isfinite(value):
        raise fail(key, f"must be a finite frame rate, got {shown(value)}")
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, float):
            rate = Fraction(value).limit_denominator(1001)
        elif isinstance(value, int):
            rate = Fraction(value)
        elif isinstance(value, str) and _RATE.match(value):
            rate = Fraction(value.strip())
        else:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        raise fail(key, f"expected a frame rate such as 25 or \"30000/1001\", got {shown(value)}") from None
    if not (value > 0 if isinstance(value, float) else rate > 0):
        raise fail(key, f"must be positive, got {shown(value)}")
    if not MIN_FPS <= rate <= MAX_FPS:
        raise fail(key, f"must be from {MIN_FPS} (a frame an hour) to {MAX_FPS} fps, got {shown(value)}")
    if rate.numerator > MAX_RATE_TERM or rate.denominator > MAX_RATE_TERM:
        raise fail(key, f"{rate} does not fit a video's time base (numerator and denominator below 2**31)")
    return rate


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(|b|kb|mb|gb|tb|kib|mib|gib|tib)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes in a size such as ``"1GB"`` (10**9), ``"512MiB"`` (2**29) or ``"123456"``."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(text)
    size = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not math.isfinite(size):  # 400 nines read as inf
        raise ValueError(text)
    return int(size)


def parse_frame_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` as (1280, 720); both even, at least 64 and at most 8192, as the demo and benchmarks need.

    Raises:
        ValueError: saying what is wrong with ``text``.
    """
    try:
        if len(text) > 32:
            raise ValueError
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected WIDTHxHEIGHT such as 1280x720, got {shown(text)}") from None
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and at least 64, got {text!r}")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ValueError(f"width and height must be at most {MAX_SIDE} (H.264's widest frame), got {text!r}")
    return width, height


def byte_size(key: str, value: Any, base: Path) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            size = value
        elif isinstance(value, str) and len(value) <= 64:
            size = parse_size(value)
        else:
            raise ValueError
    except ValueError:
        raise fail(key, f"expected a size such as \"1GB\" or \"512MiB\", got {shown(value)}") from None
    if size <= 0:
        raise fail(key, f"must be positive, got {shown(value)}")
    if size > MAX_BYTES:
        raise fail(key, f"must be at most 2**50 bytes (a petabyte), got {shown(value)}")
    return size


def auto_or(check: Check) -> Check:
    def wrapped(key: str, value: Any, base: Path) -> Any:
        return None if value == "auto" else check(key, value, base)

    return wrapped


def inputs(key: str, value: Any, base: Path) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not 0 < len(value) <= MAX_INPUT_GROUPS
        or not all(isinstance(v, str) and v in INPUT_GROUPS for v in value)
    ):
        raise fail(key, f"expected a list of 1 to {MAX_INPUT_GROUPS} of {' / '.join(INPUT_GROUPS)}, got "
                        f"{shown(value)}")
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
        raise fail(key, f"expected [x, y, w, h] with x, y >= 0 and w, h > 0, got {shown(value)}")
    return (value[0], value[1], value[2], value[3])


def string(key: str, value: Any, base: Path) -> str:
    if not isinstance(value, str) or not value:
        raise fail(key, f"expected a string, got {type_name(value)} {shown(value)}")
    return value


def boolean(key: str, value: Any, base: Path) -> bool:
    if not isinstance(value, bool):
        raise fail(key, f"expected true or false, got {shown(value)}")
    return value


def batch_profile(maximum: int) -> Check:
    """``[min, opt, max]`` batch sizes, ``1 <= min <= opt <= max <= maximum``."""

    def check(key: str, value: Any, base: Path) -> tuple[int, int, int]:
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or not 1 <= value[0] <= value[1] <= value[2] <= maximum
        ):
            raise fail(key, f"expected [min, opt, max] batch sizes with 1 <= min <= opt <= max <= {maximum}, got "
                            f"{shown(value)}")
        return (value[0], value[1], value[2])

    return check


# A Dask scheduler (tcp:// or tls://HOST:PORT), or local:N[xK]: N worker processes of K threads here.
CLUSTER_ADDRESS = re.compile(r"^(?:(?P<scheme>tcp|tls)://(?P<host>[^\s/:]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})"
                             r"|local:(?P<workers>\d{1,4})(?:x(?P<threads>\d{1,4}))?)$")


def cluster_address(key: str, value: Any, base: Path) -> str:
    """A Dask scheduler's address, ``tcp://host:port`` (or ``tls://``), or ``local:N`` / ``local:NxK``: N worker
    processes of K threads (default 1) on this machine."""
    match = CLUSTER_ADDRESS.match(value) if isinstance(value, str) else None
    if match is None:
        raise fail(key, f"expected tcp://HOST:PORT or local:N (N worker processes here), got {shown(value)}")
    if match["port"] is not None and not 0 < int(match["port"]) < 65536:
        raise fail(key, f"port {match['port']} is outside 1 to 65535")
    for part in ("workers", "threads"):
        if match[part] is not None and not 0 < int(match[part]) <= MAX_THREADS:
            raise fail(key, f"local:N needs 1 to {MAX_THREADS} workers and threads, got {shown(value)}")
    return value
