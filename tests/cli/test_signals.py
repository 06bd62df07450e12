"""Ctrl-C and SIGTERM, two or three within 10 ms, at random moments of a real ``composer run``.

Before, such bursts aborted the process ("terminate called without an active exception") in 4 of 9 tries: the
second KeyboardInterrupt cut the stages' joins short and the interpreter exited under a thread in native code.
Now every try ends with exit status 130 and a one-line message (or, when the signals come after the outputs
were complete, status 0), and doing what the message says gives the uninterrupted run's bytes.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from composer.cli.main import main
from tests.output.test_resume import SMALL, make_resume_job

SPAN = 1.5  # seconds after the run takes its outputs' locks within which the signals come: warm-up and render


def _output_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)}


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    job_file = make_resume_job(tmp_path_factory.mktemp("storm-whole"), SMALL, audio=True)
    result = CliRunner().invoke(main, ["run", str(job_file), "-q"])
    assert result.exit_code == 0, result.stderr
    return job_file, _output_bytes(job_file.parent / "out")


def _burst(job_file: Path, rng: random.Random) -> tuple[subprocess.CompletedProcess[str], str]:
    """Start ``composer run``, wait until its output folder appears (it takes its outputs' locks there, before the
    model's warm-up), then send two or three SIGINT/SIGTERM within 10 ms at a random moment of the next
    :data:`SPAN` seconds."""
    out = job_file.parent / "out"
    process = subprocess.Popen([sys.executable, "-m", "composer.cli.main", "run", str(job_file), "-q"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        began = time.monotonic()
        while not out.exists() and process.poll() is None and time.monotonic() - began < 60:
            time.sleep(0.002)
        delay, count = rng.uniform(0, SPAN), rng.choice([2, 3])
        time.sleep(delay)
        sent = []
        for _ in range(count):
            sig = rng.choice([signal.SIGINT, signal.SIGINT, signal.SIGTERM])
            if process.poll() is None:
                process.send_signal(sig)
                sent.append(sig.name)
            time.sleep(rng.uniform(0, 0.004))
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return (subprocess.CompletedProcess(process.args, process.returncode, out, err),
            f"{', '.join(sent)} {delay:.2f} s after the outputs' folder appeared")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("tries", [5])
def test_bursts_of_signals_end_in_130_and_a_state_that_finishes_exactly(tmp_path, whole, tries):
    job_file, expected = whole
    rng = random.Random(25)
    for k in range(tries):
        job = tmp_path / f"try-{k}"
        shutil.copytree(job_file.parent, job, ignore=shutil.ignore_patterns("out"))
        stopped, what = _burst(job / job_file.name, rng)
        assert "terminate called" not in stopped.stderr and "Traceback" not in stopped.stderr, (what, stopped.stderr)
        # Ended by the signal itself, silently: only when it came after the command had returned, its outputs
        # complete (the comparison below says whether they are), as the process was exiting.
        exiting = stopped.returncode in (-signal.SIGINT, -signal.SIGTERM) and not stopped.stderr.strip()
        assert stopped.returncode in (0, 130) or exiting, (what, stopped.returncode, stopped.stderr)
        if stopped.returncode == 130:
            lines = stopped.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("composer: interrupted"), (what, stopped.stderr)
            again = ["--resume"] if "--resume" in lines[0] else []
            result = CliRunner().invoke(main, ["run", str(job / job_file.name), "-q", *again])
            assert result.exit_code == 0, (what, lines[0], result.stderr)
        assert _output_bytes(job / "out") == expected, (what, stopped.stderr)
        assert not list((job / "out").glob(".*.lock")), "a lock outlived its run"
        shutil.rmtree(job)
