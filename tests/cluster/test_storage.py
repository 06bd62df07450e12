"""The check that every worker shares the job's storage, and the segment task's template runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.cluster import storage
from composer.cluster.task import template_runs
from composer.config.job import load_job
from composer.errors import JobError
from composer.inputs.schedule import schedule
from composer.version import __version__


class _Client:
    """Runs the check here, as if on workers that see what ``hidden`` leaves of this machine's files."""

    def __init__(self, hidden: set[str], version: str = __version__) -> None:
        self.hidden, self.version = hidden, version

    def run(self, function, inputs, tokens):
        def seen(paths):
            return [p for p in paths if not any(p.startswith(h) for h in self.hidden)]

        missing = next((p for p in inputs if p not in seen(inputs)), None)
        if missing is None:
            missing = next((str(Path(t).parent) for t in tokens if t not in seen(tokens)), None)
        if missing is None:
            missing, _ = function(inputs, tokens)
        return {"tcp://10.0.0.2:4000": (None, self.version), "tcp://10.0.0.3:4000": (missing, self.version)}


def test_a_worker_that_cannot_see_an_input_or_an_output_folder_is_named(make_job, tmp_path):
    job = load_job(make_job())
    assert storage.check_workers(_Client(set()), job) == 2  # type: ignore[arg-type]
    for hidden in (job.model.path, job.output.frames):
        with pytest.raises(JobError, match=rf"worker tcp://10.0.0.3:4000 cannot see {hidden}"):
            storage.check_workers(_Client({str(hidden)}), job)  # type: ignore[arg-type]
    with pytest.raises(JobError, match="worker tcp://10.0.0.2:4000 runs composer 0.0"):
        storage.check_workers(_Client(set(), "0.0"), job)  # type: ignore[arg-type]
    assert not list(job.output.frames.glob(".composer-cluster-*")), "a token file was left behind"


def test_the_check_itself_sees_missing_files_and_tokens(tmp_path):
    (tmp_path / "here").write_text("x")
    assert storage.look([str(tmp_path / "here")], []) == (None, __version__)
    assert storage.look([str(tmp_path / "gone")], [])[0] == str(tmp_path / "gone")
    assert storage.look([], [str(tmp_path / ".token")])[0] == str(tmp_path)


def test_a_segment_decodes_at_most_two_runs_of_template_frames():
    assert template_runs(np.array([5, 6, 7, 8, 7, 6])) == [(5, 9)]
    assert template_runs(np.array([], np.int64)) == []
    pingpong = schedule(1000, 37, "pingpong")
    repeat = schedule(1000, 37, "repeat")
    for order in (pingpong, repeat):
        for first in range(0, 1000, 100):
            runs = template_runs(order[first:first + 100])
            assert len(runs) <= 2
            assert sorted({int(t) for t in order[first:first + 100]}) == [t for a, b in runs for t in range(a, b)]


@pytest.mark.parametrize("address", ["local:0", "tcp://nowhere", "udp://h:1", "tcp://h:70000"])
def test_a_bad_address_is_one_line_naming_the_key(make_job, address):
    result = CliRunner().invoke(main, ["run", str(make_job()), "-q", "--cluster", address])
    assert result.exit_code == 2
    assert result.stderr.startswith("composer: error: job key run.cluster:") and result.stderr.count("\n") == 1


def test_a_task_reads_the_features_without_scanning_them_again(make_job, monkeypatch):
    """The client checked the rows' values; each task of a long job would otherwise read the whole file."""
    from composer.cluster.task import SegmentTask, render_segment
    from composer.inputs import features

    job_file = make_job(outputs=23)
    job = load_job(job_file, {"output": {"video": str(job_file.parent / "out.mp4")}})
    scanned: list[int] = []
    check = features._check_finite
    monkeypatch.setattr(features, "_check_finite", lambda path, block, start: scanned.append(start) or
                        check(path, block, start))
    result = render_segment(SegmentTask(job, 0, 0, 23))
    assert (result.first, result.stop) == (0, 23) and scanned == []
    features.load_features(job.features.path)
    assert scanned == [0]  # what a render of the job does, once
