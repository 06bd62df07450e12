"""--trace: a Chrome trace (Trace Event Format) of every stage's spans per thread, and a PNG timeline."""

from __future__ import annotations

import json
import math
import sys

import pytest

from composer.config.job import load_job
from composer.measure.timeline import chrome_trace, draw_timeline, picture_path, save_trace
from composer.rendering.render import render
from composer.runtime.trace import Span, Tracer

STAGES = {"decode", "crop", "prepare", "infer", "composite", "write_image", "write_video"}


@pytest.fixture
def traced(make_job):
    """A traced render by the pipeline of a small job that writes images and a video."""
    job = load_job(make_job(output={"video": "out.mp4"}, run={"mode": "pipeline"}))
    tracer = Tracer()
    render(job, tracer=tracer)
    return tracer


def test_segment_renderer_trace_holds_every_stage_on_its_lanes(make_job, tmp_path):
    job = load_job(make_job(output={"video": "out.mp4"}, run={"mode": "segments", "lanes": 2}))
    tracer = Tracer()
    render(job, tracer=tracer)
    trace, _ = save_trace(tracer, tmp_path / "trace.json", "small job")
    events = json.loads(trace.read_text())["traceEvents"]
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert "preload" in names and names - {"preload"} <= {"segments-0", "segments-1"}
    lanes = {e["tid"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name" and e["args"]["name"].startswith("segments-")}
    assert {e["name"] for e in events if e["ph"] == "X" and e["tid"] in lanes} == STAGES - {"decode", "crop"}
    assert len([e for e in events if e["ph"] == "b" and e["name"] == "latency"]) == 23


def test_trace_file_parses_and_holds_every_stage(traced, tmp_path):
    trace, _ = save_trace(traced, tmp_path / "trace.json", "small job")
    data = json.loads(trace.read_text())
    events = data["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert {e["name"] for e in complete} == STAGES
    for event in complete:
        assert event["dur"] >= 0 and event["ts"] >= 0 and isinstance(event["tid"], int)
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"preload", "batch", "write"} <= names and any(n.startswith("composite") for n in names)
    assert any(n.startswith("model-") for n in names)
    # Each stage stays on its own thread(s): the model lanes only infer.
    model_tids = {e["tid"] for e in events
                  if e["ph"] == "M" and e.get("args", {}).get("name", "").startswith("model-")}
    assert {e["name"] for e in complete if e["tid"] in model_tids} == {"infer"}
    begins = [e for e in events if e["ph"] == "b" and e["name"] == "latency"]
    ends = [e for e in events if e["ph"] == "e" and e["name"] == "latency"]
    assert len(begins) == len(ends) == 23  # one per output frame


def test_timeline_picture(traced, tmp_path):
    pytest.importorskip("matplotlib")
    _, picture = save_trace(traced, tmp_path / "trace.json")
    assert picture == tmp_path / "trace.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_trace_is_still_written(traced, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    trace, picture = save_trace(traced, tmp_path / "t.json")
    assert picture is None and trace.exists()
    assert draw_timeline(traced.spans, tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()


def test_overlapping_spans_and_empty_input():
    spans = [Span("latency", "composer-write", 1.0, 3.0, 0), Span("latency", "composer-write", 2.0, 4.0, 1),
             Span("infer", "composer-model", 1.5, 2.5, 0, 4)]
    events = chrome_trace(spans)["traceEvents"]
    infer = next(e for e in events if e["name"] == "infer")
    assert infer["ts"] == pytest.approx(0.5e6) and infer["dur"] == pytest.approx(1e6)
    assert infer["args"] == {"frame": 0, "count": 4}
    assert {e["id"] for e in events if e["ph"] in "be"} == {"latency-0", "latency-1"}
    assert chrome_trace([])["traceEvents"] == []


def test_picture_goes_beside_the_trace(tmp_path):
    assert picture_path(tmp_path / "run.json") == tmp_path / "run.png"
    assert picture_path(tmp_path / "run.png") == tmp_path / "run.png.png"


def test_run_writes_a_trace(make_job, tmp_path):
    from click.testing import CliRunner

    from composer.cli.main import main

    trace = tmp_path / "run.json"
    result = CliRunner().invoke(main, ["run", str(make_job()), "-q", "--trace", str(trace)])
    assert result.exit_code == 0, result.output
    assert {e["name"] for e in json.loads(trace.read_text())["traceEvents"] if e["ph"] == "X"} >= {"infer"}


def test_span_percentiles_in_milliseconds():
    tracer = Tracer()
    tracer.extend(Span("latency", "t", 0.0, k / 1000, k) for k in range(1, 102))  # 1 .. 101 ms
    tracer.add("infer", 0.0, 5.0)
    assert tracer.percentiles_ms("latency", (50, 95, 99)) == pytest.approx((51.0, 96.0, 100.0))
    assert all(math.isnan(p) for p in tracer.percentiles_ms("composite", (50, 95)))
