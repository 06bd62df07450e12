"""composer live end to end in the process: pacing, drops, idle frames, the frames' pixels, failing stages.

No assertion is about time: the rows are fed at the stream's rate (10 fps, which a loaded machine keeps up with
for a cheap model), and what is checked is counts, pixels and the latency's shape, not its size.
"""

from __future__ import annotations

import statistics
import types

import av
import cv2
import numpy as np
import pytest

from composer.config.job import load_job
from composer.errors import JobError, OutputError, StageError
from composer.live import renderer
from composer.live.runner import open_live
from composer.live.stream import ImageStream
from composer.rendering.reference import render_reference
from tests.conftest import read_folder
from tests.live.helpers import FPS, features_of, live_run, quarters, slow


def _ts_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_feeder_at_the_stream_rate_loses_no_frame(make_job, tmp_path):
    job_file = make_job(outputs=12)
    stats = live_run(job_file, tmp_path / "out.ts", features_of(job_file))
    summary = stats.summary()
    assert (summary["rows"], summary["rendered"], summary["dropped"], summary["idle"]) == (12, 12, 0, 0)
    assert summary["frames"] == 12 == _ts_frames(tmp_path / "out.ts")
    assert [f.index for f in stats.frames] == list(range(12))
    for record in stats.frames:  # every moment set, in the order the stages run
        moments = [record.read, record.taken, record.batched, record.inferred, record.composited, record.due,
                   record.encoded, record.written]
        assert moments == sorted(moments)
    assert summary["latency_ms"]["p50"] > 0 and summary["streams_served"] > 0
    assert set(summary["latency_ms"]["stages"]) == {"wait", "batch", "infer", "composite", "pace", "encode", "write"}


def test_frames_are_the_file_renders_when_the_window_is_one_row(make_job, tmp_path):
    """With a window of one row, frame i depends on row i alone, so the stream's images are the reference
    loop's for the same rows (pass-through frame and ping-pong schedule included)."""
    job_file = make_job(outputs=14, window=1)
    stats = live_run(job_file, tmp_path / "live", features_of(job_file))
    assert stats.summary()["dropped"] == 0 and stats.summary()["idle"] == 0
    render_reference(load_job(job_file, {"output": {"frames": str(tmp_path / "ref"), "video": ""}}))
    live, reference = read_folder(tmp_path / "live"), read_folder(tmp_path / "ref")
    assert len(live) == len(reference) == 14
    for k, (a, b) in enumerate(zip(live, reference)):
        assert np.array_equal(a, b), f"frame {k}"


def test_a_pause_fills_the_stream_with_the_templates_own_frames(make_job, tmp_path):
    job_file = make_job(outputs=10)
    stats = live_run(job_file, tmp_path / "live", features_of(job_file), pauses={5: 0.8})
    summary = stats.summary()
    assert summary["idle"] > 0 and summary["rendered"] + summary["dropped"] == 10
    assert summary["frames"] == summary["rendered"] + summary["idle"] + stats.count("dropped")
    images = read_folder(tmp_path / "live")
    assert len(images) == summary["frames"]
    idle = [s for s in stats.slots if s.kind == "idle"]
    for slot in idle:  # the template's frame, its rectangle untouched
        template = cv2.imread(str(job_file.parent / "template" / f"frame_{slot.template}.png"))
        assert np.array_equal(images[slot.slot], template), f"slot {slot.slot}"
    # idle slots continue the template from the last row's frame
    first = idle[0]
    before = stats.slots[first.slot - 1]
    assert before.row is not None
    assert first.template == _template_after(job_file, before.row + 1)


def _template_after(job_file, i):
    from composer.inputs.schedule import template_index

    return template_index(i, 7, "pingpong")


def test_a_model_slower_than_the_stream_drops_frames_and_keeps_the_latency_flat(make_job, tmp_path):
    job_file = make_job(outputs=28)
    period = 1 / FPS
    stats = live_run(job_file, tmp_path / "out.ts", features_of(job_file), open_model=slow(2.5 * period))
    summary = stats.summary()
    assert summary["dropped"] > 0 and summary["rendered"] > 0
    assert summary["frames"] == _ts_frames(tmp_path / "out.ts")
    assert summary["streams_served"] < 1
    ends = [f.written - f.read for f in stats.frames]
    first, last = quarters(ends)
    assert statistics.median(last) <= statistics.median(first) + 3 * period, ends


def test_rows_not_yet_arrived_are_zeros_in_the_window(make_job, tmp_path):
    """Frame i's window holds rows up to i: the feature input of frame i is what the window of a features file
    whose rows after i are zeros gives."""
    job_file = make_job(outputs=6, window=4)
    rows = features_of(job_file)
    seen = []

    def check(live):
        original = live.renderer.step.infer

        def infer(model, inputs, frames):
            seen.append((frames[0], inputs.features[0].copy()))
            return original(model, inputs, frames)

        live.renderer.step.infer = infer

    live_run(job_file, tmp_path / "live", rows, check=check)
    from composer.inputs.features import feature_window

    for i, features in seen:
        known = np.where(np.arange(len(rows))[:, None] <= i, rows, 0)
        assert np.array_equal(features, feature_window(known, i, 4).reshape(features.shape)), f"frame {i}"


def test_a_partial_row_at_the_end_names_the_row(make_job, tmp_path):
    job_file = make_job(outputs=4)
    with pytest.raises(JobError, match=r"row 4 is cut short"):
        live_run(job_file, tmp_path / "out.ts", features_of(job_file), tail=b"\0" * 7)
    assert _ts_frames(tmp_path / "out.ts") >= 0  # the stream so far is closed and readable


def test_a_row_with_nan_names_the_row(make_job, tmp_path):
    job_file = make_job(outputs=5)
    rows = features_of(job_file).copy()
    rows[3, 2] = np.nan
    with pytest.raises(JobError, match=r"row 3 holds NaN"):
        live_run(job_file, tmp_path / "live", rows)


def test_a_failing_model_stops_the_run(make_job, tmp_path):
    job_file = make_job(outputs=8)

    def check(live):
        def fail(images, features=None):
            raise RuntimeError("boom")

        live.renderer.model.run = fail  # after the warm-up, which ran the real one

    with pytest.raises(StageError, match=r"infer failed at frames? 0"):
        live_run(job_file, tmp_path / "live", features_of(job_file), check=check)


def test_a_failing_stream_stops_the_run(make_job, tmp_path, monkeypatch):
    job_file = make_job(outputs=8)

    def write(self, index, frame):
        raise OutputError(f"disk full at frame {index}")

    monkeypatch.setattr(ImageStream, "write", write)
    with pytest.raises(OutputError, match=r"disk full at frame 0"):
        live_run(job_file, tmp_path / "live", features_of(job_file))


def test_loop_once_is_refused(make_job, tmp_path):
    job_file = make_job(outputs=4, loop="once")
    with pytest.raises(JobError, match=r"run.loop"):
        live_run(job_file, tmp_path / "live", features_of(job_file))


def test_a_job_without_features_is_refused(make_job, tmp_path):
    job_file = make_job(outputs=None)
    with pytest.raises(JobError, match=r"features.row_shape"):
        live_run(job_file, tmp_path / "live", np.zeros((2, 5), np.float32))


def test_a_job_with_only_a_row_shape_streams(make_job, tmp_path):
    job_file = make_job(outputs=6)
    rows = features_of(job_file)
    job_file.write_text(job_file.read_text().replace('path = "features.npy"', "row_shape = [5]"))
    (job_file.parent / "features.npy").unlink()
    stats = live_run(job_file, tmp_path / "out.ts", rows)
    assert stats.summary()["rows"] == 6 and stats.summary()["rendered"] + stats.summary()["dropped"] == 6


def test_only_the_features_files_header_is_read(make_job, tmp_path, monkeypatch):
    """Live takes the rows from its input: the file gives their shape, its values are never scanned."""
    job_file = make_job(outputs=4)
    rows = features_of(job_file)
    np.save(job_file.parent / "features.npy", np.full_like(rows, np.nan))  # a file render would refuse this
    stats = live_run(job_file, tmp_path / "out.ts", rows)
    assert stats.summary()["rows"] == 4 and stats.summary()["rendered"] + stats.summary()["dropped"] == 4


def test_a_row_shape_that_disagrees_with_the_features_file_is_refused(make_job, tmp_path):
    job_file = make_job(outputs=3)
    job_file.write_text(job_file.read_text().replace('path = "features.npy"', 'path = "features.npy"\nrow_shape = [6]'))
    with pytest.raises(JobError, match=r"features.row_shape: \[6\], but the rows of .* are \[5\]"):
        live_run(job_file, tmp_path / "out.ts", features_of(job_file))


def test_a_stream_another_run_writes_is_refused(make_job, tmp_path):
    from composer.output.lock import OutputLock

    job_file = make_job(outputs=3)
    with OutputLock(tmp_path / "out.ts"), pytest.raises(OutputError, match=r"another composer run"):
        live_run(job_file, tmp_path / "out.ts", features_of(job_file))


def test_a_stream_over_an_input_is_refused_by_the_library_too(make_job):
    job_file = make_job(outputs=3)
    with pytest.raises(JobError, match=r"--output"):
        live_run(job_file, job_file.parent / "template", features_of(job_file))


def test_a_template_larger_than_the_memory_allows_is_refused(make_job, monkeypatch):
    job_file = make_job(outputs=4)
    monkeypatch.setattr(renderer.psutil, "virtual_memory", lambda: types.SimpleNamespace(available=10_000))
    with pytest.raises(JobError, match=r"holds the whole template in memory; run.memory_fraction allows 0 MiB"):
        with open_live(load_job(job_file)):
            pass
