"""The live benchmark in a tiny mode: it runs, reports every column and writes its section."""

from __future__ import annotations

import json

from benchmarks.live import HEADER, main


def test_the_live_benchmark_runs_tiny(tmp_path, capsys):
    report = tmp_path / "RESULTS.md"
    assert main(["--model", "light", "--seconds", "0.5", "--rate", "10", "--size", "64x64", "--out",
                 str(tmp_path / "bench"), "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "streams served" in printed and "light" in printed
    stats = json.loads((tmp_path / "bench" / "light" / "stats.json").read_text())
    assert stats["rows"] == 5 and stats["rendered"] + stats["dropped"] == 5
    assert (tmp_path / "bench" / "light" / "live.ts").stat().st_size > 0
    text = report.read_text()
    assert "<!-- composer:live -->" in text and "python -m benchmarks.live --model light --seconds 0.5" in text
    assert all(column in text for column in HEADER)
