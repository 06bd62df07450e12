"""A job rendered on a local Dask cluster of two worker processes: the single-machine run's bytes, whatever
happens to the workers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.cluster.connect import RETRIES
from composer.cluster.render import render_on_cluster
from composer.cluster.task import EXIT_ONCE
from composer.config.job import load_job
from composer.errors import Interrupted
from composer.output.resume import SEGMENT_FRAMES
from composer.rendering.render import render
from composer.runtime.trace import Tracer
from tests.conftest import job_factory, write_wav
from tests.model.faulty import build_faulty

distributed = pytest.importorskip("distributed")

OUTPUTS = 2 * SEGMENT_FRAMES + 30  # three segments, the last one short


@pytest.fixture(scope="module")
def cluster() -> str:
    """The address of a local cluster of two worker processes, one thread each, shared by the module's tests."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": RETRIES}), distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit=0,
            scheduler_kwargs={"dashboard": False}) as local:
        yield local.scheduler_address


def _single(root: Path, outputs: int) -> tuple[Path, dict[str, bytes]]:
    """A job of ``outputs`` frames writing images and an mp4 with audio, and what its single-machine run wrote."""
    write_wav(root / "speech.wav", seconds=outputs / 25 + 1)
    job_file = job_factory(root)(frames=9, outputs=outputs, nulls=(2, 8),
                                 output={"video": "out.mp4", "audio": "../speech.wav", "preset": "ultrafast"})
    result = CliRunner().invoke(main, ["run", str(job_file), "-q"])
    assert result.exit_code == 0, result.stderr
    return job_file, _outputs(job_file.parent / "out", job_file.parent / "out.mp4")


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """Three segments, the last one short."""
    return _single(tmp_path_factory.mktemp("cluster"), OUTPUTS)


@pytest.fixture(scope="module")
def longer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """Six segments: more than the two workers are running when the first one comes in."""
    return _single(tmp_path_factory.mktemp("cluster-longer"), 5 * SEGMENT_FRAMES + 30)


def _outputs(frames: Path, video: Path) -> dict[str, bytes]:
    found = {p.name: p.read_bytes() for p in sorted(frames.iterdir())}
    found["video"] = video.read_bytes()
    assert not list(video.parent.glob(".*.parts")), "the segments were not cleaned up"
    return found


def _where(tmp_path: Path) -> list[str]:
    return ["--set", f"output.frames={tmp_path / 'frames'}", "--set", f"output.video={tmp_path / 'out.mp4'}"]


def _set_environ(name: str, value: str | None) -> None:
    """Run on each worker: set (or, with None, remove) a variable of its environment."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _run(job_file: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["run", str(job_file), "-q", *args])


@pytest.mark.timeout(120)
def test_images_and_mp4_are_the_single_machines(cluster, single, tmp_path):
    job_file, expected = single
    result = _run(job_file, "--cluster", cluster, *_where(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert _outputs(tmp_path / "frames", tmp_path / "out.mp4") == expected


@pytest.mark.timeout(120)
def test_a_local_cluster_composer_starts_itself(single, tmp_path):
    job_file, expected = single
    result = _run(job_file, "--set", "run.cluster=local:2", *_where(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert _outputs(tmp_path / "frames", tmp_path / "out.mp4") == expected


@pytest.mark.timeout(120)
def test_a_worker_that_dies_mid_segment_changes_nothing(cluster, single, tmp_path):
    job_file, expected = single
    marker = tmp_path / "exited"
    with distributed.Client(cluster) as client:
        client.run(_set_environ, EXIT_ONCE, str(marker))
        try:
            result = _run(job_file, "--cluster", cluster, *_where(tmp_path))
        finally:
            client.run(_set_environ, EXIT_ONCE, None)
    assert marker.exists(), "no worker exited"
    assert result.exit_code == 0, result.stderr
    assert _outputs(tmp_path / "frames", tmp_path / "out.mp4") == expected


@pytest.mark.timeout(120)
def test_progress_counts_every_frame_and_the_trace_names_the_workers(cluster, single, tmp_path):
    job_file, _ = single
    job = load_job(job_file, {"output": {"frames": str(tmp_path / "frames"), "video": str(tmp_path / "out.mp4")}})
    done: list[int] = []

    class Counting:
        def started(self, total: int) -> None:
            assert total == OUTPUTS

        def frame_done(self, index: int) -> None:
            done.append(index)

        def finished(self) -> None:
            pass

    tracer = Tracer()
    stats = render_on_cluster(job, cluster, Counting(), tracer)
    assert stats.frames == OUTPUTS and sorted(done) == list(range(OUTPUTS))
    workers = {span.thread.split()[0] for span in tracer.spans}
    assert workers and all(w.startswith("tcp://") for w in workers), workers
    assert {"decode", "infer", "composite", "write_image", "write_video"} <= {s.stage for s in tracer.spans}
    assert all(abs(s.start - time.perf_counter()) < 600 for s in tracer.spans)  # on this process's clock


@pytest.mark.timeout(120)
def test_a_failing_segment_exits_1_naming_segment_and_frame(cluster, single, tmp_path):
    job_file, _ = single
    root = job_file.parent
    features = np.load(root / "features.npy")
    features[150, 0] = 0  # the model's NaN at output frame 150 (element 10 of its window is row i, column 0)
    np.save(tmp_path / "features.npy", features)
    build_faulty(tmp_path / "nan.onnx", fault="nan", window=20, feature_shape=(20,), probe=10)
    result = _run(job_file, "--cluster", cluster, *_where(tmp_path), "--set", f"features.path={tmp_path}/features.npy",
                  "--set", f"model.path={tmp_path}/nan.onnx")
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "segment 1 (frames 100-199)" in lines[0] and "frame 150" in lines[0], lines
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.timeout(60)
def test_an_unreachable_scheduler_exits_2_at_once(single, tmp_path):
    job_file, _ = single
    began = time.perf_counter()
    result = _run(job_file, "--cluster", "tcp://127.0.0.1:9", *_where(tmp_path))
    assert result.exit_code == 2, result.stderr
    assert time.perf_counter() - began < 30
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in lines[0], lines


@pytest.mark.timeout(120)
@pytest.mark.parametrize("on_cluster", [True, False])
def test_ctrl_c_keeps_finished_segments_and_resume_renders_the_rest(cluster, longer, tmp_path, on_cluster):
    """Stopped once its first segment is in, then resumed on the cluster, or on this machine: only the segments
    that are not complete are rendered, and the result is the uninterrupted run's."""
    job_file, expected = longer
    job = load_job(job_file, {"output": {"frames": str(tmp_path / "frames"), "video": str(tmp_path / "out.mp4")}})

    class Stopping:
        def started(self, total: int) -> None:
            pass

        def frame_done(self, index: int) -> None:
            raise KeyboardInterrupt

        def finished(self) -> None:
            pass

    with pytest.raises(Interrupted) as stopped:
        render_on_cluster(job, cluster, Stopping())
    assert stopped.value.resumable
    parts = sorted(p.name for p in (tmp_path / ".out.mp4.parts").glob("part-*.mp4"))
    assert parts, "no finished segment was kept"
    assert not (tmp_path / "out.mp4").exists()
    kept = {int(name[5:11]) for name in parts}
    rendered: list[int] = []

    class Counting(Stopping):
        def frame_done(self, index: int) -> None:
            rendered.append(index)

    if on_cluster:
        render_on_cluster(job, cluster, Counting(), resume=True)
    else:
        render(job.with_run(mode="segments", lanes=2), Counting(), resume=True)  # the pipeline goes in order
    assert {i // SEGMENT_FRAMES for i in rendered} == set(range(6)) - kept, (sorted(kept), rendered[:3])
    assert len(kept) < 6, "every segment had finished: nothing was left to resume"
    assert _outputs(tmp_path / "frames", tmp_path / "out.mp4") == expected


@pytest.mark.timeout(120)
def test_a_video_template_decoded_in_each_task_gives_the_same_bytes(cluster, demo_video_job, tmp_path):
    """The demo job: an H.264 template, which each task seeks into and decodes itself."""
    single = _run(demo_video_job, *_where(tmp_path / "single"))
    assert single.exit_code == 0, single.stderr
    result = _run(demo_video_job, "--cluster", cluster, *_where(tmp_path / "cluster"))
    assert result.exit_code == 0, result.stderr
    assert _outputs(tmp_path / "cluster" / "frames", tmp_path / "cluster" / "out.mp4") == _outputs(
        tmp_path / "single" / "frames", tmp_path / "single" / "out.mp4")


@pytest.mark.timeout(120)
def test_a_worker_thread_decodes_the_template_once_a_run(cluster, longer, tmp_path):
    job_file, expected = longer
    job = load_job(job_file, {"output": {"frames": str(tmp_path / "frames"), "video": str(tmp_path / "out.mp4")}})
    tracer = Tracer()
    render_on_cluster(job, cluster, None, tracer)
    decodes = [s for s in tracer.spans if s.stage == "decode"]
    # Six segments of one 9-frame template on two one-thread workers: each thread decodes the frames once, for
    # the first segment it renders, and takes them from there for the next ones.
    threads = {s.thread for s in tracer.spans if s.stage == "infer"}
    assert decodes and sum(s.count for s in decodes) <= 9 * len(threads) <= 9 * 2
    assert _outputs(tmp_path / "frames", tmp_path / "out.mp4") == expected
