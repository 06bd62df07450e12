"""The precision benchmark in a tiny mode: it converts, compares, renders both models and writes its section."""

from __future__ import annotations

import re

from benchmarks.precision import main


def test_the_precision_benchmark_runs_tiny(tmp_path, capsys):
    report = tmp_path / "RESULTS.md"
    assert main(["--frames", "4", "--compare", "2", "--size", "96x64", "--out", str(tmp_path / "bench"),
                 "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "float32: 4 frames" in printed and "float16: 4 frames" in printed
    text = report.read_text()
    assert "<!-- composer:precision -->" in text
    assert re.search(r"\| float16 \(`composer fp16`\) \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \|", text), text
