"""benchmarks.cluster: one machine, then a local cluster of one-thread workers, on a tiny job."""

from __future__ import annotations

import pytest

from benchmarks.cluster import Costs, Outcome, main

pytest.importorskip("distributed")


@pytest.mark.timeout(120)
def test_tiny_run_checks_the_bytes_and_writes_the_section(tmp_path, capsys):
    report = tmp_path / "report.md"
    assert main(["--tiny", "--model", "light", "--out", str(tmp_path / "bench"), "--report", str(report)]) == 0
    text = report.read_text()
    assert "<!-- composer:cluster-light -->" in text and "## Cluster: light model" in text
    assert "| same bytes (images and mp4) | yes |" in text and "**Projection** (not measured)" in text
    for row in ("task start", "task template seek + decode", "task encoder start", "task segment write", "join"):
        assert f"| {row}" in text
    out = capsys.readouterr().out
    assert "ratio (goal >= 0.90)" in out and "projection (not measured)" in out


def test_the_projection_shares_segments_out_in_waves():
    costs = Costs(start=0.1, decode=0.05, encoder=0.0, write=0.05, per_frame=0.01)  # a task: 0.2 + 1 s
    outcome = Outcome("light", 1000, 2, 50.0, 48.0, costs, join_seconds=0.5, overhead=0.3, same=True)
    assert outcome.ratio == pytest.approx(0.96)
    assert outcome.projected_fps(4) == pytest.approx(1000 / (3 * 1.2 + 0.8))  # 10 segments: 3 waves
    assert outcome.projected_fps(16) == outcome.projected_fps(64) == pytest.approx(1000 / 2.0)  # one wave
