"""A failing stage ends the run promptly with its error: no hang, no thread left, no finished-looking file."""

from __future__ import annotations

import re
import threading
import time

import pytest

from composer.config.job import load_job
from composer.errors import ModelError, OutputError, SourceError, StageError
from composer.inputs.sources import FolderSource
from composer.model.session import Model
from composer.output.video_segments import SegmentedVideoSink
from composer.output.writers import ImageFolderSink, VideoSink
from composer.rendering import layout, memory, step
from composer.rendering.render import render
from tests.conftest import write_wav

OUTPUTS = 40


class Boom(RuntimeError):
    pass


def _fail_at(monkeypatch, owner, name, at, error):
    """Make ``owner.name`` raise ``error`` on its call number ``at`` (0-based) of the render; ``owner`` may be a
    tuple of modules that each import the function, counted together.

    Model calls are counted from the first frame: the warm-up before it is left out (and the model is not
    timed: see conftest)."""
    if (owner, name) == (Model, "run"):
        monkeypatch.setattr(layout, "warm_up", lambda lanes, batch: None)
    owners = owner if isinstance(owner, tuple) else (owner,)
    original = getattr(owners[0], name)
    calls = {"n": 0}
    lock = threading.Lock()

    def wrapper(*args, **kwargs):
        with lock:
            n = calls["n"]
            calls["n"] += 1
        if n == at:
            raise error
        return original(*args, **kwargs)

    for each in owners:
        monkeypatch.setattr(each, name, wrapper)


RENDERERS = (step,)  # the modules whose functions a stage failure is injected into


def _failing_frames(at):
    original = FolderSource.frames

    def frames(self, start=0, stop=None):
        for k, frame in enumerate(original(self, start, stop)):
            if start + k == at:
                raise SourceError(f"{self.path}: frame {at} could not be decoded")
            yield frame

    return frames


def _composer_threads():
    return [t for t in threading.enumerate() if t.name.startswith("composer-") and t.is_alive()]


@pytest.fixture(params=["pipeline", "segments"])
def job(request, make_job, tmp_path):
    """A 40-frame job with a video, rendered by the pipeline (chunks of 4 frames) or the segment renderer."""
    job_file = make_job(frames=12, outputs=OUTPUTS, nulls=(5,))
    run = {"batch": 3, "workers": 2, "chunk": 4} if request.param == "pipeline" else {"batch": 3, "lanes": 2}
    return load_job(job_file, {"output": {"video": str(tmp_path / "result.mp4")},
                               "run": {"mode": request.param, **run}})


def _run_and_check(job, cause_type, tmp_path, stage):
    began = time.perf_counter()
    with pytest.raises(StageError) as caught:
        render(job)
    elapsed = time.perf_counter() - began
    assert caught.value.stage == stage
    assert isinstance(caught.value.__cause__, cause_type)
    message = str(caught.value)
    assert message.startswith(f"{stage} failed at ") and "frame" in message and "\n" not in message
    assert elapsed < 5, f"the run took {elapsed:.1f} s to stop"
    assert not _composer_threads(), "a stage thread outlived the run"
    assert not (tmp_path / "result.mp4").exists(), "a failed run left a finished-looking video"


@pytest.mark.parametrize("at", [0, 7, 11])
def test_source_failure(monkeypatch, job, tmp_path, at):
    monkeypatch.setattr(FolderSource, "frames", _failing_frames(at))
    _run_and_check(job, SourceError, tmp_path, "decode")


@pytest.mark.parametrize("at", [0, 5, 10])
def test_model_failure(monkeypatch, job, tmp_path, at):
    _fail_at(monkeypatch, Model, "run", at, ModelError("model.onnx: inference failed"))
    _run_and_check(job, ModelError, tmp_path, "infer")


@pytest.mark.parametrize("at", [0, 17, 35])  # 36 output frames have a rectangle
def test_composite_failure(monkeypatch, job, tmp_path, at):
    _fail_at(monkeypatch, RENDERERS, "composite", at, Boom("composite broke"))
    _run_and_check(job, Boom, tmp_path, "composite")


@pytest.mark.parametrize("at", [0, 20, OUTPUTS - 1])
def test_image_writer_failure(monkeypatch, job, tmp_path, at):
    _fail_at(monkeypatch, ImageFolderSink, "write", at, OutputError("out/000020.png: No space left on device"))
    _run_and_check(job, OutputError, tmp_path, "write")


@pytest.mark.parametrize("at", [0, 20, OUTPUTS - 1])
def test_video_writer_failure(monkeypatch, job, tmp_path, at):
    _fail_at(monkeypatch, VideoSink, "write_converted", at, OutputError("result.mp4: No space left on device"))
    _run_and_check(job, OutputError, tmp_path, "write")


def test_warm_up_failure_stops_before_any_output(monkeypatch, job, tmp_path):
    """A model that fails on its warm-up batch is reported before a thread starts or a file is written."""
    monkeypatch.setattr(Model, "run", lambda *args: (_ for _ in ()).throw(ModelError("model.onnx: bad")))
    with pytest.raises(ModelError, match="model.onnx: bad"):
        render(job)
    assert not _composer_threads()
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*parts"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("outputs", [30, 120])
def test_a_slow_video_sink_holds_the_pipeline_to_its_output_slots(monkeypatch, make_job, tmp_path, outputs):
    """With the video sink slower than every other stage, the frames the model has predicted but the writer has
    not yet handed to the sink never outnumber the pipeline's output slots
    (:func:`composer.rendering.memory.slot_count`),
    however long the job: the model lane and the composite workers wait for the writer instead of running ahead.
    (The sink's encoder threads keep a bounded backlog of their own behind that hand-over.)

    One model lane (a second one may hold one more inferred batch at the turnstile), every frame with a
    rectangle (each output frame is one model row) and the whole template cached (the cache's two slots would
    otherwise hold the lane back on their own)."""
    batch, workers = 3, 2
    job_file = make_job(frames=12, outputs=outputs, nulls=())
    job = load_job(job_file, {"output": {"video": str(tmp_path / "result.mp4")},
                              "run": {"mode": "pipeline", "batch": batch, "workers": workers, "lanes": 1,
                                      "chunk": 12}})
    lock = threading.Lock()
    counts = {"inferred": 0, "handed": 0, "peak": 0}
    run, write = Model.run, SegmentedVideoSink.write_converted

    def counted_run(self, images, features=None):
        predictions = run(self, images, features)
        if threading.current_thread().name.startswith("composer-model"):  # not the warm-up on the caller's
            with lock:
                counts["inferred"] += len(images)
                counts["peak"] = max(counts["peak"], counts["inferred"] - counts["handed"])
        return predictions

    def slow_write(self, frame):
        time.sleep(0.002)
        write(self, frame)
        with lock:
            counts["handed"] += 1

    monkeypatch.setattr(Model, "run", counted_run)
    monkeypatch.setattr(SegmentedVideoSink, "write_converted", slow_write)
    stats = render(job)
    assert stats.frames == counts["inferred"] == counts["handed"] == outputs
    assert (tmp_path / "result.mp4").exists()
    assert counts["peak"] <= memory.slot_count(batch, workers)
    # The sink really was the bottleneck: the writer's queue (2 batches and a frame per worker) filled up.
    assert counts["peak"] >= 2 * batch + workers


def test_interrupt_stops_every_stage(monkeypatch, job, tmp_path):
    """Ctrl-C on the caller's thread stops and joins every stage, and the video is not finished."""
    _fail_at(monkeypatch, Model, "run", 4, KeyboardInterrupt())
    began = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        render(job)
    assert time.perf_counter() - began < 5
    assert not _composer_threads()
    assert not (tmp_path / "result.mp4").exists()
    names = [p.name for p in (tmp_path / "job" / "out").iterdir()]
    assert ".composer-run.json" in names, "the interrupted run left nothing to resume from"
    assert all(n.endswith(".png") for n in names if not n.startswith(".")), names
    assert not [n for n in names if n.endswith(".tmp")], names


@pytest.mark.parametrize("at", [0, 11, 30])
def test_prepare_failure(monkeypatch, job, tmp_path, at):
    _fail_at(monkeypatch, RENDERERS, "fill_image", at, Boom("prepare broke"))
    _run_and_check(job, Boom, tmp_path, "prepare")


@pytest.mark.parametrize("at", [0, 1, "finish"])
def test_audio_mux_failure(monkeypatch, make_job, tmp_path, at):
    """A failure while the audio is encoded leaves no video and no half file."""
    job_file = make_job(frames=12, outputs=OUTPUTS)
    write_wav(job_file.parent / "speech.wav", seconds=3)
    audio = str(job_file.parent / "speech.wav")
    job = load_job(job_file, {"output": {"video": str(tmp_path / "result.mp4"), "audio": audio}})
    from composer.output import writers

    if at == "finish":
        monkeypatch.setattr(writers._AudioTrack, "finish", _raise(OSError(28, "No space left on device")))
    else:
        _fail_at(monkeypatch, writers._AudioTrack, "write_until", at, OSError(28, "No space left on device"))
    _run_and_check(job, OutputError, tmp_path, "mux")
    assert not list(tmp_path.glob(".result.mp4.partial*"))


@pytest.mark.parametrize("run", [{"mode": "pipeline", "workers": 2, "chunk": 4}, {"mode": "segments"}])
def test_audio_failure_stops_the_render_at_once(monkeypatch, make_job, tmp_path, run):
    """The audio is encoded beside the render; its failure ends the render then, not after the last frame."""
    job_file = make_job(frames=12, outputs=OUTPUTS)
    write_wav(job_file.parent / "speech.wav", seconds=3)
    job = load_job(job_file, {"output": {"video": str(tmp_path / "result.mp4"),
                                         "audio": str(job_file.parent / "speech.wav")},
                              "run": {"batch": 2, "lanes": 1, **run}})
    from composer.output import writers

    calls = []
    original = Model.run

    def slow(self, *args):  # 20 batches: 3 s or more to render them all
        calls.append(1)
        time.sleep(0.15)
        return original(self, *args)

    monkeypatch.setattr(layout, "warm_up", lambda lanes, batch: None)
    monkeypatch.setattr(Model, "run", slow)
    _fail_at(monkeypatch, writers._AudioTrack, "write_until", 1, OSError(28, "No space left on device"))
    _run_and_check(job, OutputError, tmp_path, "mux")
    assert len(calls) < 10, f"the render went on for {len(calls)} of 20 batches after the audio failed"
    assert not list(tmp_path.glob(".result.mp4.partial*"))


def test_failure_through_the_cli_is_one_line_with_exit_1(monkeypatch, make_job):
    from click.testing import CliRunner

    from composer.cli.main import main

    _fail_at(monkeypatch, RENDERERS, "composite", 5, Boom("composite broke"))
    result = CliRunner().invoke(main, ["run", str(make_job()), "-q"])
    assert result.exit_code == 1
    expected = r"composer: error: composite failed at frame \d+: Boom: composite broke\n"
    assert re.fullmatch(expected, result.stderr)


def _raise(error):
    def raiser(*args, **kwargs):
        raise error

    return raiser
