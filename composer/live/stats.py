"""Per-frame times and the live run's summary (seed 002: latency is the system's, per frame and per stage).

Each rendered frame carries its index and the times (:func:`composer.live.clock.now` seconds) it was read,
taken by the renderer, batched (its model input ready), inferred, composited, due (its slot's time), encoded
and written. End to end is ``written - read``; each stage is the time between two of these.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PERCENTS = (50, 95, 99)
# stage name -> (from, to): the time between two of a frame's moments
STAGES = {
    "wait": ("read", "taken"),  # in the slot, until the renderer took the row
    "batch": ("taken", "batched"),  # crop, model input and feature window
    "infer": ("batched", "inferred"),
    "composite": ("inferred", "composited"),
    "pace": ("composited", "due"),  # finished, until its slot's time
    "encode": ("due", "encoded"),
    "write": ("encoded", "written"),
}


@dataclass
class FrameRecord:
    """One row's frame on its way through the stages. Each time is set by the one thread that holds the record
    then (the reader, the renderer, the writer in turn: queues hand it over)."""

    index: int
    read: float
    taken: float = math.nan
    batched: float = math.nan
    inferred: float = math.nan
    composited: float = math.nan
    due: float = math.nan
    encoded: float = math.nan
    written: float = math.nan


@dataclass(frozen=True)
class SlotRecord:
    """What one slot of the stream showed: ``kind`` is ``rendered`` (row ``row``'s frame), ``dropped`` (row
    ``row``'s frame was late: the last finished frame again) or ``idle`` (no row: template frame ``template``)."""

    slot: int
    kind: str
    row: int | None
    template: int


def percentiles_ms(values: list[float]) -> dict[str, float | None]:
    """``p50``, ``p95``, ``p99`` of ``values`` (seconds) in milliseconds; None each when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {f"p{p}": None for p in PERCENTS}
    points = np.percentile(np.asarray(finite) * 1000, PERCENTS)
    return {f"p{p}": round(float(v), 3) for p, v in zip(PERCENTS, points)}


@dataclass(frozen=True)
class LiveStats:
    """The summary of a live run.

    Attributes:
        fps: the stream's frame rate.
        latency: the clock's latency budget, seconds.
        rows: rows read.
        slots: what each slot of the stream showed, in order.
        frames: the rendered frames' records, in order.
        busy: seconds the renderer spent on frames (late ones included), and how many frames that was.
        displaced: rows that lost their slot to a newer row (a producer faster than the stream).
    """

    fps: float
    latency: float
    rows: int
    slots: list[SlotRecord] = field(default_factory=list)
    frames: list[FrameRecord] = field(default_factory=list)
    busy: tuple[float, int] = (0.0, 0)
    displaced: int = 0

    def count(self, kind: str) -> int:
        return sum(1 for s in self.slots if s.kind == kind)

    @property
    def dropped(self) -> int:
        """Rows whose frame did not make the stream: late ones (their slot repeated the last frame) and displaced
        ones."""
        return self.count("dropped") + self.displaced

    @property
    def fps_sustained(self) -> float:
        """Frames a second the renderer sustains: frames rendered over the seconds it spent on them."""
        seconds, frames = self.busy
        return frames / seconds if seconds > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        """The ``--stats`` JSON."""
        ends = [f.written - f.read for f in self.frames]
        stages = {name: percentiles_ms([getattr(f, b) - getattr(f, a) for f in self.frames])
                  for name, (a, b) in STAGES.items()}
        sustained = self.fps_sustained
        return {
            "frames": len(self.slots),
            "rendered": self.count("rendered"),
            "dropped": self.dropped,
            "idle": self.count("idle"),
            "rows": self.rows,
            "fps": round(self.fps, 6),
            "latency_budget_ms": round(self.latency * 1000, 3),
            "latency_ms": {**percentiles_ms(ends), "stages": stages},
            "fps_sustained": round(sustained, 3) if math.isfinite(sustained) else None,
            "streams_served": round(sustained / self.fps, 3) if math.isfinite(sustained) else None,
        }

    def write(self, path: Path) -> None:
        """Write :meth:`summary` as JSON to ``path``."""
        Path(path).write_text(json.dumps(self.summary(), indent=2) + "\n")

    def line(self) -> str:
        """One line for a person."""
        s = self.summary()
        latency = s["latency_ms"]
        ends = "n/a" if latency["p50"] is None else f"p50 {latency['p50']:.0f} ms, p99 {latency['p99']:.0f} ms"
        served = "n/a" if s["streams_served"] is None else f"{s['streams_served']:.2f}"
        return (f"{s['frames']} frames ({s['rendered']} rendered, {s['dropped']} dropped, {s['idle']} idle) from "
                f"{s['rows']} rows; latency {ends}; streams served {served}")
