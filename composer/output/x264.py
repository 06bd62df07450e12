"""x264's instruction set, pinned so that the same frames always make the same bytes.

x264 picks the widest instruction set the CPU has. Its AVX-512 code is the exception to everything else about
it: measured on an AVX-512 Xeon (PyAV 18's x264, core 165), encoding the same 23 frames 200 times in one process
gave one to seven different results in 12 of 15 processes, at encodes that depended on the process's earlier
allocations, and its output differs from the other levels' at 1280x720. The SSSE3, SSE4.2, AVX and AVX2 levels
give one result, identical to each other, and AVX2 encodes 5% faster than AVX-512 there. So x264 runs at AVX2 at
most: deterministic, and the same bytes on every x86-64 machine from SSSE3 (2006) on, with or without AVX-512.
Measurements: docs/performance.md.

The CPU's features come from NumPy's runtime dispatch table; where it cannot be read, or on other architectures
(ARM has no AVX-512, and x264's names for its levels are x86's), x264 chooses for itself.
"""

from __future__ import annotations

import functools
import importlib
import platform
from collections.abc import Mapping

__all__ = ["ASM_CAP", "x264_options"]

ASM_CAP = "AVX2"  # the widest level x264 may use; recorded in the resume fingerprint
# x264's level names, widest first, with the CPU features (NumPy's names) each level turns on: x264's "AVX2"
# includes FMA3, LZCNT, BMI1 and BMI2.
_LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AVX2", ("AVX2", "FMA3", "LZCNT", "BMI", "BMI2", "AVX", "SSE42")),
    ("AVX", ("AVX", "SSE42")),
    ("SSE4.2", ("SSE42",)),
    ("SSSE3", ("SSSE3",)),
)
_X86 = frozenset({"x86_64", "amd64"})


def asm_level(machine: str, features: Mapping[str, bool] | None) -> str | None:
    """The x264 level for a CPU of ``machine`` (``platform.machine()``) with ``features``: the widest of
    :data:`_LEVELS` it has, up to :data:`ASM_CAP`; None (x264 chooses) off x86-64, without features, or below
    SSSE3."""
    if machine.lower() not in _X86 or features is None:
        return None
    return next((name for name, needs in _LEVELS if all(features.get(n, False) for n in needs)), None)


def _cpu_features() -> Mapping[str, bool] | None:
    """NumPy's table of this CPU's features (checked for OS support), or None where this NumPy has none."""
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            table = getattr(importlib.import_module(module), "__cpu_features__", None)
        except ImportError:
            continue
        if isinstance(table, dict):
            return table
    return None


@functools.cache
def _this_level() -> str | None:
    return asm_level(platform.machine(), _cpu_features())


def x264_options(*params: str) -> dict[str, str]:
    """libx264's options for x264 ``params`` (``"key=value"``) and the instruction set pinned on this machine:
    ``{"x264-params": "asm=AVX2"}`` on a current x86-64 CPU; without the pin where x264 chooses for itself."""
    level = _this_level()
    pinned = [*params, *([f"asm={level}"] if level is not None else [])]
    return {"x264-params": ":".join(pinned)} if pinned else {}
