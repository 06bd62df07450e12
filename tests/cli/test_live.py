"""``composer live`` as a process: the end of the input, Ctrl-C and SIGTERM each leave a stream that plays;
malformed rows exit 2 with one line; standard output carries the stream; ``--stats`` and the checks of paths."""

from __future__ import annotations

import contextlib
import io
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests.live.helpers import FPS, features_of

WAIT = 60  # seconds any step may take on a loaded machine before the test fails instead of hanging


class LiveProcess:
    """``composer live`` with rows written to its standard input by the test and its stderr read line by line."""

    def __init__(self, job_file: Path, *args: str, stdout: int = subprocess.DEVNULL) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "composer.cli.main", "live", str(job_file), "--set", f"output.fps={FPS}", *args],
            stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace")
            self.stderr.append(line)
            self.lines.put(line)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                if "ready" in self.lines.get(timeout=1):
                    return
            except queue.Empty:
                if self.process.poll() is not None:
                    break
        raise AssertionError(f"composer live did not get ready: {''.join(self.stderr)}")

    def feed(self, rows: np.ndarray, rate: float = FPS) -> None:
        assert self.process.stdin is not None
        start = time.perf_counter()
        for k, row in enumerate(rows):
            time.sleep(max(0.0, start + k / rate - time.perf_counter()))
            try:
                self.process.stdin.write(np.ascontiguousarray(row, "<f4").tobytes())
                self.process.stdin.flush()
            except BrokenPipeError:  # composer stopped reading: a malformed row ended it
                return

    def finish(self) -> int:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # composer has stopped reading already
            self.process.stdin.close()
        return self.process.wait(timeout=WAIT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT)


def _frames(data: str | bytes | Path) -> int:
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with av.open(source) as container:
        return sum(1 for _ in container.decode(video=0))


def test_the_end_of_the_input_ends_a_complete_stream(make_job, tmp_path):
    job_file = make_job(outputs=8)
    live = LiveProcess(job_file, "--output", str(tmp_path / "out.ts"), "--stats", str(tmp_path / "stats.json"))
    try:
        live.wait_ready()
        live.feed(features_of(job_file))
        assert live.finish() == 0, "".join(live.stderr)
    finally:
        live.kill()
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["rows"] == 8 and stats["frames"] == _frames(tmp_path / "out.ts") >= 1
    assert stats["rendered"] + stats["dropped"] == 8
    assert any("8 rows" in line for line in live.stderr)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_closes_the_stream_so_that_it_plays(make_job, tmp_path, sig):
    job_file = make_job(outputs=8)
    live = LiveProcess(job_file, "--output", str(tmp_path / "out.ts"), "--stats", str(tmp_path / "stats.json"))
    try:
        live.wait_ready()
        live.feed(features_of(job_file))  # and the input stays open: the stream goes on with idle frames
        deadline = time.monotonic() + WAIT
        while _frames(tmp_path / "out.ts") < 8 and time.monotonic() < deadline:
            time.sleep(0.1)  # read while it is written, as a player would
        live.process.send_signal(sig)
        assert live.process.wait(timeout=WAIT) == 130, "".join(live.stderr)
    finally:
        live.kill()
    assert _frames(tmp_path / "out.ts") >= 8
    assert json.loads((tmp_path / "stats.json").read_text())["rows"] == 8
    assert any("interrupted" in line for line in live.stderr)


def test_a_partial_row_exits_2_naming_the_row(make_job, tmp_path):
    job_file = make_job(outputs=3)
    live = LiveProcess(job_file, "--output", str(tmp_path / "out.ts"))
    try:
        live.wait_ready()
        live.feed(features_of(job_file))
        assert live.process.stdin is not None
        live.process.stdin.write(b"\0" * 6)
        assert live.finish() == 2
    finally:
        live.kill()
    errors = [line for line in live.stderr if line.startswith("composer: error")]
    assert len(errors) == 1 and "row 3 is cut short" in errors[0]
    assert not any("Traceback" in line for line in live.stderr)


def test_a_nan_row_exits_2_naming_the_row(make_job, tmp_path):
    job_file = make_job(outputs=4)
    rows = features_of(job_file).copy()
    rows[2, 0] = np.nan
    live = LiveProcess(job_file, "--output", str(tmp_path / "frames"))
    try:
        live.wait_ready()
        live.feed(rows)
        assert live.process.wait(timeout=WAIT) == 2
    finally:
        live.kill()
    assert any("row 2 holds NaN" in line for line in live.stderr)


def test_the_stream_goes_to_standard_output(make_job, tmp_path):
    job_file = make_job(outputs=6)
    live = LiveProcess(job_file, "--output", "-", stdout=subprocess.PIPE)
    chunks: list[bytes] = []
    assert live.process.stdout is not None
    reader = threading.Thread(target=lambda: chunks.append(live.process.stdout.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        live.wait_ready()
        live.feed(features_of(job_file))
        assert live.finish() == 0, "".join(live.stderr)
        reader.join(timeout=WAIT)
    finally:
        live.kill()
    assert _frames(b"".join(chunks)) >= 1


def test_a_player_that_quits_ends_the_stream_cleanly(make_job):
    job_file = make_job(outputs=20)
    live = LiveProcess(job_file, "--output", "-", stdout=subprocess.PIPE)
    try:
        live.wait_ready()
        assert live.process.stdout is not None
        live.process.stdout.close()  # the player quits before the first frame
        live.feed(features_of(job_file))
        assert live.finish() == 0, "".join(live.stderr)
    finally:
        live.kill()
    assert any("its reader closed it at frame 0; the stream ends there" in line for line in live.stderr), live.stderr
    assert not any("error" in line or "Traceback" in line for line in live.stderr), live.stderr


def test_an_output_over_an_input_is_refused(make_job):
    job_file = make_job(outputs=3)
    result = subprocess.run([sys.executable, "-m", "composer.cli.main", "live", str(job_file), "--output",
                             str(job_file.parent / "template")], capture_output=True, text=True, timeout=WAIT,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "--output" in result.stderr


def test_an_mp4_output_is_refused(make_job, tmp_path):
    job_file = make_job(outputs=3)
    result = subprocess.run([sys.executable, "-m", "composer.cli.main", "live", str(job_file), "--output",
                             str(tmp_path / "out.mp4")], capture_output=True, text=True, timeout=WAIT,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "MPEG-TS" in result.stderr


def test_run_refuses_a_job_whose_features_are_only_a_row_shape(make_job):
    job_file = make_job(outputs=3)
    text = job_file.read_text().replace('path = "features.npy"', "row_shape = [5]")
    job_file.write_text(text)
    result = subprocess.run([sys.executable, "-m", "composer.cli.main", "run", str(job_file), "-q"],
                            capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 2 and "features.path" in result.stderr
