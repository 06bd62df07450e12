"""Observers: what the renderers tell the outside world about their progress."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import psutil

if TYPE_CHECKING:
    from tqdm import tqdm

    from composer.rendering.layout import RenderLayout


@dataclass(frozen=True)
class RenderStats:
    """What a finished render reports."""

    frames: int
    seconds: float
    peak_rss: int  # bytes, resident set of the process at its highest seen during the render
    layout: RenderLayout | None = None  # how it ran (the reference loop has none)

    @property
    def fps(self) -> float:
        """Output frames per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


class Observer(Protocol):
    """Receives progress from a render. Called from the writer thread; keep it cheap."""

    def started(self, total: int) -> None: ...

    def frame_done(self, index: int) -> None: ...

    def finished(self) -> None: ...


class NullObserver:
    """Observes nothing."""

    def started(self, total: int) -> None:
        pass

    def frame_done(self, index: int) -> None:
        pass

    def finished(self) -> None:
        pass


class ProgressBar:
    """A tqdm progress bar with fps and ETA, shown only on a terminal."""

    def __init__(self, enabled: bool | None = None, label: str = "render") -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.label = label
        self._bar: tqdm[Any] | None = None  # tqdm is imported when a bar is shown, not with composer

    def started(self, total: int) -> None:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self.label, unit="frame", dynamic_ncols=True, smoothing=0.1)

    def frame_done(self, index: int) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def finished(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class PeakMemory:
    """The process's peak resident set size over a render.

    On Linux the kernel keeps the exact high-water mark (``VmHWM``), which writing ``5`` to
    ``/proc/self/clear_refs`` resets at the start; elsewhere the RSS is sampled at most every 50 ms.
    """

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._exact = _reset_high_water_mark()
        self._peak = self._process.memory_info().rss
        self._last = 0.0

    def sample(self) -> None:
        """Note the current RSS (a no-op where the kernel tracks the peak itself)."""
        now = time.perf_counter()
        if not self._exact and now - self._last >= 0.05:
            self._last = now
            self._peak = max(self._peak, self._process.memory_info().rss)

    @property
    def peak(self) -> int:
        """Bytes at the highest point since this object was made."""
        if self._exact:
            hwm = _high_water_mark()
            if hwm is not None:
                return hwm
        self.sample()
        return max(self._peak, self._process.memory_info().rss)


def _high_water_mark() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return _high_water_mark() is not None
