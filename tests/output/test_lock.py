"""One run at a time on an output: a second one is refused naming the first, a dead run's lock is taken over."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.config.job import load_job
from composer.errors import OutputError
from composer.output.lock import OutputLock, lock_path
from composer.output.resume import SEGMENT_FRAMES, parts_folder
from tests.output.test_resume import OUTPUTS, SMALL, make_resume_job

HOLDER = f"pid {os.getpid()} on {socket.gethostname()}"


def _hold_in_a_child(output: Path) -> subprocess.Popen[str]:
    """A process that takes ``output``'s lock, says so, and sleeps."""
    code = ("import sys, time\nfrom composer.output.lock import OutputLock\n"
            "OutputLock(sys.argv[1]).acquire()\nprint('held', flush=True)\ntime.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(output)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_second_lock_is_refused_naming_the_holder(tmp_path):
    output = tmp_path / "out" / "frames"
    with OutputLock(output):
        assert lock_path(output).read_text().strip() == HOLDER
        with pytest.raises(OutputError, match=f"another composer run is writing there \\({HOLDER}\\)"):
            OutputLock(output).acquire()
    assert not lock_path(output).exists(), "a released lock leaves no file"
    with OutputLock(output):
        pass


@pytest.mark.timeout(60)
def test_the_lock_of_a_killed_run_is_taken_over(tmp_path):
    output = tmp_path / "result.mp4"
    child = _hold_in_a_child(output)
    try:
        with pytest.raises(OutputError, match=f"pid {child.pid} on "):
            OutputLock(output).acquire()
    finally:
        child.kill()
        child.wait()
    assert f"pid {child.pid} " in lock_path(output).read_text()  # left behind by the killed run
    with OutputLock(output):
        assert lock_path(output).read_text().strip() == HOLDER


def test_a_lock_file_nobody_holds_is_taken_over(tmp_path):
    output = tmp_path / "frames"
    lock_path(output).write_text("pid 999999 on a-machine-long-gone\n")
    with OutputLock(output):
        assert lock_path(output).read_text().strip() == HOLDER


def test_a_link_at_the_locks_name_is_not_followed(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    output = tmp_path / "frames"
    lock_path(output).symlink_to(victim)
    with pytest.raises(OutputError, match="cannot create the output's lock file"):
        OutputLock(output).acquire()
    assert victim.read_text() == "keep me"


def test_a_run_on_outputs_another_run_writes_is_refused_in_one_line(make_job):
    job_file = make_job(output={"video": "out.mp4"})
    job = load_job(job_file)
    assert job.output.video is not None
    with OutputLock(job.output.video):
        result = CliRunner().invoke(main, ["run", str(job_file), "-q"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("composer: error: ") and HOLDER in lines[0], result.stderr
    assert not (job_file.parent / "out.mp4").exists()


def test_the_locks_are_released_when_a_run_fails_or_is_interrupted(make_job, monkeypatch):
    from composer.rendering import layout

    job_file = make_job(output={"video": "out.mp4"})
    job = load_job(job_file)
    locks = [lock_path(p) for p in (job.output.frames, job.output.video) if p is not None]

    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(layout, "warm_up", interrupt)
        assert CliRunner().invoke(main, ["run", str(job_file), "-q"]).exit_code == 130
    assert not any(p.exists() for p in locks)
    result = CliRunner().invoke(main, ["run", str(job_file), "-q", "--set", "model.crop=25"])  # model misfits
    assert result.exit_code == 2 and "error" in result.stderr
    assert not any(p.exists() for p in locks)
    assert CliRunner().invoke(main, ["run", str(job_file), "-q"]).exit_code == 0
    assert not any(p.exists() for p in locks)


@pytest.mark.timeout(120)
def _held(out: Path) -> bool:
    """Whether a run holds a lock in ``out``: the file names its holder once the lock is taken."""
    for lock in out.glob(".*.composer.lock") if out.exists() else ():
        with contextlib.suppress(OSError):
            if lock.read_text().startswith("pid "):
                return True
    return False


def test_two_runs_at_once_on_the_same_outputs(tmp_path):
    """Before, both deleted each other's video segments and failed on a missing hidden file; now the second is
    refused, naming the first, and the first finishes."""
    job_file = make_resume_job(tmp_path / "job", SMALL)
    out = job_file.parent / "out"
    first = subprocess.Popen([sys.executable, "-m", "composer.cli.main", "run", str(job_file), "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60  # until the first run holds a lock and has written its name in it
        while not _held(out) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        second = CliRunner().invoke(main, ["run", str(job_file), "-q"])
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.exit_code == 2 and f"pid {first.pid} on {socket.gethostname()}" in second.stderr, second.stderr
    assert first.returncode == 0, err
    assert len(list((out / "frames").glob("*.png"))) == OUTPUTS > 2 * SEGMENT_FRAMES
    assert (out / "result.mp4").exists() and not parts_folder(out / "result.mp4").exists()
    assert not list(out.glob(".*.lock")) and not list((out / "frames").glob(".*"))
