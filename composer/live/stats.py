"""Per-frame times and the live run's summary (seed 002: latency is the system's, per frame and per stage).

Each rendered frame carries its index and the times (:func:`composer.live.clock.now` seconds) it was read,
taken by the renderer, batched (its model input ready), inferred, composited, due (its slot's time), encoded
and written. End to end is ``written - read``; each stage is the time between two of these.
"""

from __future__ import annotations

import json
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PERCENTS = (50, 95, 99)
RECENT = 1000  # slots and frames kept in full, the last ones of the stream
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


class Quantiles:
    """Percentiles of a stream of durations in constant memory: counts in log-spaced bins.

    A bin spans a factor of :attr:`STEP` (0.5%), from :attr:`LOW` (1 microsecond) to :attr:`HIGH` (3 hours);
    a percentile is reported as the geometric middle of the bin that holds it, so it is within 0.25% of the
    exact one. Shorter durations (and negative ones: a clock read out of order) count as 0, longer ones as
    :attr:`HIGH`. The counts take 37 KB however long the stream runs.
    """

    LOW, HIGH, STEP = 1e-6, 1e4, 1.005
    _BINS = math.ceil(math.log(HIGH / LOW) / math.log(STEP))

    def __init__(self) -> None:
        self.counts = np.zeros(self._BINS + 2, np.int64)  # below LOW, the bins, from HIGH on
        self.total = 0

    def add(self, seconds: float) -> None:
        """Count one duration; a NaN (a moment never reached) is skipped."""
        if math.isnan(seconds):
            return
        if seconds < self.LOW:
            k = 0
        elif seconds >= self.HIGH:
            k = self._BINS + 1
        else:
            k = 1 + min(self._BINS - 1, int(math.log(seconds / self.LOW) / math.log(self.STEP)))
        self.counts[k] += 1
        self.total += 1

    def value(self, percent: float) -> float | None:
        """The ``percent`` percentile in seconds (nearest rank), None before the first duration."""
        if self.total == 0:
            return None
        rank = min(self.total, max(1, math.ceil(percent / 100 * self.total)))
        k = int(np.searchsorted(np.cumsum(self.counts), rank))
        if k == 0:
            return 0.0
        if k == self._BINS + 1:
            return self.HIGH
        return self.LOW * self.STEP ** (k - 0.5)

    def percentiles_ms(self) -> dict[str, float | None]:
        """``p50``, ``p95``, ``p99`` in milliseconds (None each before the first duration)."""
        values = {f"p{p}": self.value(p) for p in PERCENTS}
        return {k: None if v is None else round(v * 1000, 3) for k, v in values.items()}


class Tally:
    """What a live run has streamed so far, in memory that does not grow with the stream: how many slots of
    each kind, the percentiles of the latencies (end to end and per stage), and the last :data:`RECENT` slots
    and frames in full. Fed by the one thread that writes the stream."""

    def __init__(self, recent: int = RECENT) -> None:
        self.kinds: Counter[str] = Counter()
        self.ends = Quantiles()
        self.stages = {name: Quantiles() for name in STAGES}
        self.recent_slots: deque[SlotRecord] = deque(maxlen=recent)
        self.recent_frames: deque[FrameRecord] = deque(maxlen=recent)

    def frame(self, record: FrameRecord) -> None:
        """A rendered frame written to the stream, every moment of it set."""
        self.ends.add(record.written - record.read)
        for name, (a, b) in STAGES.items():
            self.stages[name].add(getattr(record, b) - getattr(record, a))
        self.recent_frames.append(record)

    def slot(self, record: SlotRecord) -> None:
        """A slot of the stream written."""
        self.kinds[record.kind] += 1
        self.recent_slots.append(record)


@dataclass(frozen=True)
class LiveStats:
    """The summary of a live run.

    Attributes:
        fps: the stream's frame rate.
        latency: the clock's latency budget, seconds.
        rows: rows read.
        kinds: how many slots were rendered, dropped and idle.
        ends: the frames' latencies, a row's arrival to its frame written.
        stages: the frames' time in each stage of :data:`STAGES`.
        slots: what each of the last :data:`RECENT` slots showed, in order.
        frames: the records of the last :data:`RECENT` rendered frames, in order.
        busy: seconds the renderer spent on frames (late ones included), and how many frames that was.
        displaced: rows that lost their slot to a newer row (a producer faster than the stream).
    """

    fps: float
    latency: float
    rows: int
    kinds: dict[str, int] = field(default_factory=dict)
    ends: dict[str, float | None] = field(default_factory=lambda: Quantiles().percentiles_ms())
    stages: dict[str, dict[str, float | None]] = field(
        default_factory=lambda: {name: Quantiles().percentiles_ms() for name in STAGES})
    slots: list[SlotRecord] = field(default_factory=list)
    frames: list[FrameRecord] = field(default_factory=list)
    busy: tuple[float, int] = (0.0, 0)
    displaced: int = 0

    @classmethod
    def of(cls, tally: Tally, *, fps: float, latency: float, rows: int, busy: tuple[float, int],
           displaced: int) -> LiveStats:
        """The summary of what ``tally`` has counted."""
        return cls(fps=fps, latency=latency, rows=rows, kinds=dict(tally.kinds), ends=tally.ends.percentiles_ms(),
                   stages={name: q.percentiles_ms() for name, q in tally.stages.items()},
                   slots=list(tally.recent_slots), frames=list(tally.recent_frames), busy=busy, displaced=displaced)

    def count(self, kind: str) -> int:
        return self.kinds.get(kind, 0)

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
        sustained = self.fps_sustained
        return {
            "frames": sum(self.kinds.values()),
            "rendered": self.count("rendered"),
            "dropped": self.dropped,
            "idle": self.count("idle"),
            "rows": self.rows,
            "fps": round(self.fps, 6),
            "latency_budget_ms": round(self.latency * 1000, 3),
            "latency_ms": {**self.ends, "stages": dict(self.stages)},
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
