"""Conditioning features: one row per output frame, read in windows (docs/design.md section 3.6)."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from composer.config.limits import MAX_FRAMES
from composer.errors import JobError

_SCAN_ROWS = 65536  # rows checked for NaN at a time, so a huge memory-mapped file never loads whole
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def load_features(path: Path, scan: bool = True) -> np.ndarray:
    """Memory-map a ``.npy`` array ``[N, ...]`` of numbers, without pickle, and check it is finite as float32
    (``scan`` False: not its values, which a caller has checked already).

    Raises:
        JobError: the file is missing, not a numeric array, or holds NaN or infinite values, or values beyond
            float32's range (the model's input type); the message names the first such row.
    """
    array = _mapped(Path(path))
    if scan and array.dtype.kind == "f":
        for start in range(0, len(array), _SCAN_ROWS):
            _check_finite(path, np.asarray(array[start : start + _SCAN_ROWS]), start)
    release(array)
    return array


def row_shape_of(path: Path) -> tuple[int, ...]:
    """The shape of one row of the features file at ``path``, from its header (its values are not read).

    Raises:
        JobError: the file is missing or not a numeric array ``[N, ...]``.
    """
    return tuple(int(n) for n in _mapped(Path(path)).shape[1:])


def _mapped(path: Path) -> np.ndarray:
    """The ``.npy`` array at ``path``, memory-mapped, checked to be ``[N, ...]`` numbers (not their values)."""
    if not path.is_file():
        raise JobError(f"{path}: no such features file")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise JobError(f"{path}: not a .npy array of numbers: {exc}") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub" or array.ndim < 1:
        raise JobError(f"{path}: expected a numeric array [N, ...], got {getattr(array, 'dtype', '?')}")
    if len(array) == 0:
        raise JobError(f"{path}: the features array has no rows")
    if len(array) > MAX_FRAMES or array.size == 0:  # rows of nothing take no room in the file
        raise JobError(f"{path}: expected 1 to {MAX_FRAMES} rows of at least one value, got shape {array.shape}")
    return array


def _check_finite(path: Path, block: np.ndarray, start: int) -> None:
    """Refuse rows ``start ..`` of ``block`` where a value is NaN or infinite as the model gets it, in float32.

    A float64 value beyond float32's range (about 3.4e38) would reach the model as inf, so it is refused too.
    """
    with np.errstate(over="ignore"):  # the cast turns such values into inf, which is what is looked for
        model_values = block.astype(np.float32, copy=False).reshape(len(block), -1)
    finite = np.isfinite(model_values)
    if finite.all():
        return
    row = int(np.flatnonzero(~finite.all(axis=1))[0])
    value = block.reshape(len(block), -1)[row][~finite[row]][0]
    if np.isfinite(value):
        raise JobError(
            f"{path}: row {start + row} holds {float(value):g}, beyond float32's range (magnitude above "
            f"{_FLOAT32_MAX:.1e}), which is what the model takes"
        )
    raise JobError(f"{path}: row {start + row} holds NaN or infinite values")


def release(features: np.ndarray) -> None:
    """Drop a memory-mapped array's pages from the process's resident memory.

    Pages of a mapped file stay resident once read, so a long features file would otherwise add to the
    process's memory as the render reads through it. Pages touched again are mapped back from the page cache.
    Does nothing for an array in ordinary memory, or where the platform lacks ``madvise``.
    """
    mapping = getattr(features, "_mmap", None)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if isinstance(mapping, mmap.mmap) and advice is not None and hasattr(mapping, "madvise"):
        mapping.madvise(advice)


def feature_window(features: np.ndarray, i: int, window: int) -> np.ndarray:
    """Rows ``i - window//2 .. i - window//2 + window - 1`` as float32; rows outside ``[0, N)`` are zeros."""
    start = i - window // 2
    out = np.zeros((window, *features.shape[1:]), dtype=np.float32)
    lo, hi = max(start, 0), min(start + window, len(features))
    if lo < hi:
        out[lo - start : hi - start] = features[lo:hi]
    return out
