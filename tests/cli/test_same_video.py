"""The mp4 is the same, byte for byte, whichever `[run]` setting, renderer or resume point wrote it: its segments
and every x264 setting of each are fixed by the job alone."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.output.resume import SEGMENT_FRAMES
from tests.conftest import job_factory, write_wav

OUTPUTS = 2 * SEGMENT_FRAMES + 30  # three segments, the last one short


@pytest.fixture(scope="module")
def video_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A 230-frame job writing images and an mp4 with audio, and the mp4 of its default run."""
    root = tmp_path_factory.mktemp("same-video")
    write_wav(root / "speech.wav", seconds=10)
    job_file = job_factory(root)(frames=9, outputs=OUTPUTS, nulls=(2, 8),
                                 output={"video": "out.mp4", "audio": "../speech.wav", "preset": "ultrafast"})
    result = CliRunner().invoke(main, ["run", str(job_file), "-q"])
    assert result.exit_code == 0, result.stderr
    return job_file, (job_file.parent / "out.mp4").read_bytes()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("args", [("--set", "run.lanes=1"), ("--set", "run.mode=pipeline"),
                                  ("--set", "run.mode=segments", "--set", "run.lanes=3"),
                                  ("--set", "run.encoders=1"), ("--reference",)])
def test_every_run_setting_and_the_reference_write_the_same_mp4(video_job, tmp_path, args):
    job_file, expected = video_job
    video = tmp_path / "other.mp4"
    result = CliRunner().invoke(main, ["run", str(job_file), "-q", "--set", f"output.video={video}",
                                       "--set", f"output.frames={tmp_path / 'frames'}", *args])
    assert result.exit_code == 0, result.stderr
    assert video.read_bytes() == expected


@pytest.mark.timeout(120)
def test_a_resumed_run_with_other_lanes_writes_the_same_mp4(video_job, tmp_path, monkeypatch):
    """Stopped after its first segments with two lanes, resumed with one lane: the uninterrupted run's bytes."""
    from composer.rendering import step

    job_file, expected = video_job
    video = tmp_path / "resumed.mp4"
    where = ["--set", f"output.video={video}", "--set", f"output.frames={tmp_path / 'frames'}"]
    original, calls = step.composite, itertools.count()

    def stopping(*a: object, **k: object) -> object:
        if next(calls) == 150:
            raise KeyboardInterrupt
        return original(*a, **k)

    with monkeypatch.context() as patch:
        patch.setattr(step, "composite", stopping)
        stopped = CliRunner().invoke(main, ["run", str(job_file), "-q", "--set", "run.lanes=2", *where])
    assert stopped.exit_code == 130, stopped.stderr
    assert not video.exists()
    resumed = CliRunner().invoke(main, ["run", str(job_file), "-q", "--resume", "--set", "run.lanes=1", *where])
    assert resumed.exit_code == 0, resumed.stderr
    assert video.read_bytes() == expected
