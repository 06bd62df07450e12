"""Live statistics in memory that does not grow with the stream."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from composer.live.stats import RECENT, STAGES, FrameRecord, LiveStats, Quantiles, SlotRecord, Tally


def _record(index: int, step: float) -> FrameRecord:
    """A frame whose eight moments are ``step`` seconds apart, read at ``index`` seconds."""
    times = [index + k * step for k in range(8)]
    return FrameRecord(index, *times)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_percentiles_are_within_a_quarter_percent_of_the_exact_ones(seed):
    values = np.random.default_rng(seed).lognormal(mean=-2.5, sigma=0.8, size=5001)  # ~80 ms, long tail
    quantiles = Quantiles()
    for v in values:
        quantiles.add(float(v))
    for p in (50, 95, 99):
        exact = float(np.percentile(values, p, method="inverted_cdf"))
        assert quantiles.value(p) == pytest.approx(exact, rel=0.0026), p


def test_durations_out_of_range_and_moments_never_reached():
    quantiles = Quantiles()
    assert quantiles.value(50) is None and quantiles.percentiles_ms() == {"p50": None, "p95": None, "p99": None}
    quantiles.add(math.nan)
    assert quantiles.total == 0
    quantiles.add(-0.002)  # a clock read out of order
    assert quantiles.value(50) == 0.0
    for _ in range(3):
        quantiles.add(1e6)
    assert quantiles.value(99) == Quantiles.HIGH


def test_a_long_stream_keeps_its_counts_and_only_the_last_records():
    tally = Tally(recent=10)
    for k in range(25):
        tally.slot(SlotRecord(k, "idle" if k % 5 == 0 else "rendered", None if k % 5 == 0 else k, k))
        if k % 5:
            tally.frame(_record(k, 0.001 * (1 + k % 3)))
    stats = LiveStats.of(tally, fps=25.0, latency=0.2, rows=20, busy=(1.0, 20), displaced=1)
    summary = stats.summary()
    assert (summary["frames"], summary["rendered"], summary["idle"], summary["dropped"]) == (25, 20, 5, 1)
    assert [s.slot for s in stats.slots] == list(range(15, 25))
    assert [f.index for f in stats.frames] == [k for k in range(25) if k % 5][-10:]
    assert summary["latency_ms"]["p50"] == pytest.approx(7 * 2, rel=0.003)  # 7 steps of 2 ms, the median
    assert set(summary["latency_ms"]["stages"]) == set(STAGES)
    assert summary["latency_ms"]["stages"]["infer"]["p99"] == pytest.approx(3, rel=0.003)


def test_a_tallys_memory_does_not_grow_with_the_stream():
    def grown(frames: int) -> int:
        tally = Tally()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for k in range(frames):
                tally.slot(SlotRecord(k, "rendered", k, k % 7))
                tally.frame(_record(k, 0.004))
            return tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()

    assert grown(6 * RECENT) < 1.2 * grown(2 * RECENT)  # past RECENT frames, nothing more is kept


def test_an_empty_run_summarises_to_nothing():
    summary = LiveStats(fps=25.0, latency=0.2, rows=0).summary()
    assert summary["frames"] == 0 and summary["latency_ms"]["p50"] is None
    assert all(v["p99"] is None for v in summary["latency_ms"]["stages"].values())
