"""Every error is one line: composer's own (exit 2 or 1), unexpected exceptions (exit 1, the traceback with
--debug) and click's usage errors, including a value out of an option's range (exit 2)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.errors import JobError, StageError


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _one_line(result, code: int, *words: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("composer: error: ")
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (MemoryError("Unable to allocate 72.8 TiB"), ["unexpected MemoryError: Unable to allocate 72.8 TiB"]),
        (RecursionError("maximum recursion depth exceeded"), ["unexpected RecursionError: maximum recursion"]),
        (OverflowError("cannot convert Infinity\nto integer ratio"), ["unexpected OverflowError: cannot convert "
                                                                     "Infinity to integer ratio"]),
        (ValueError("x" * 5000), ["unexpected ValueError: xxx", "..."]),
        (KeyError("frame"), ["unexpected KeyError: 'frame'"]),
    ],
)
def test_an_unexpected_exception_is_one_line_and_exit_1(runner, make_job, monkeypatch, error, words):
    def explode(*args, **kwargs):
        raise error

    monkeypatch.setattr("composer.cli.main.load_job", explode)
    line = _one_line(runner.invoke(main, ["run", str(make_job()), "-q"]), 1, *words)
    assert line.endswith("run again with --debug for the traceback")
    assert len(line) < 400


def test_debug_shows_the_unexpected_exception(runner, make_job, monkeypatch):
    def explode(*args, **kwargs):
        raise OverflowError("cannot convert Infinity to integer ratio")

    monkeypatch.setattr("composer.cli.main.load_job", explode)
    result = runner.invoke(main, ["--debug", "run", str(make_job()), "-q"])
    assert isinstance(result.exception, OverflowError)


def test_a_numpy_memory_error_is_named_memory_error(runner, make_job, monkeypatch):
    import numpy as np

    monkeypatch.setattr("composer.cli.main.load_job", lambda *a, **k: np.zeros((2**40, 2**20), np.float32))
    _one_line(runner.invoke(main, ["run", str(make_job()), "-q"]), 1, "unexpected MemoryError: ")


def test_a_composer_error_of_several_lines_is_printed_on_one(runner, make_job, monkeypatch):
    cause = RuntimeError("OpenCV(5.1.0) alloc.cpp:73: error:\n(-4:Insufficient memory)\n")

    def explode(*args, **kwargs):
        raise StageError("composite", "frame 3", cause)

    monkeypatch.setattr("composer.cli.main.load_job", explode)
    _one_line(runner.invoke(main, ["run", str(make_job()), "-q"]), 1,
              "composite failed at frame 3: RuntimeError: OpenCV(5.1.0) alloc.cpp:73: error: (-4:Insufficient")


def test_a_usage_error_raised_by_a_command_stays_a_usage_error(runner, make_job):
    result = runner.invoke(main, ["run", str(make_job()), "-q", "--reference", "--trace", "t.json"])
    _one_line(result, 2, "--trace records the processor's threads")


def test_composer_alone_still_prints_its_help(runner):
    result = runner.invoke(main, [])
    assert "Usage:" in result.output and "run" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["run", "JOB", "-b", "4097"],
        ["run", "JOB", "-b", "1e400"],
        ["run", "JOB", "-b", str(2**70)],
        ["run", "JOB", "-w", "1000000"],
        ["run", "JOB", "-c", str(2**64)],
        ["run", "JOB", "-c", "9" * 5000],
        ["run", "JOB", "--bogus"],
        ["run"],
        ["demo", "-n", "1000000000"],
        ["demo", "--size", "100000x100000"],
        ["demo", "--size", "9" * 5000 + "x64"],
        ["rects", "show", "JOB", "JOB", "-o", "s.png", "--width", "100000"],
        ["rects", "show", "JOB", "JOB", "-o", "s.png", "--columns", "0"],
        ["rects", "show", "JOB", "JOB", "-o", "s.png", "--samples", str(10**9)],
        ["rects", "from-landmarks", "DIR", "-o", "r.json", "-n", str(10**13)],
        ["rects", "from-landmarks", "DIR", "-o", "r.json", "--smooth", str(2**70)],
        ["rects", "from-landmarks", "DIR", "-o", "r.json", "--margin", "nan"],
        ["rects", "from-landmarks", "DIR", "-o", "r.json", "--margin", "inf"],
        ["rects", "from-landmarks", "DIR", "-o", "r.json", "--margin", "1e400"],
        ["profile", "JOB", "-n", str(10**12)],
        ["profile", "JOB", "--rounds", str(10**6)],
        ["profile", "JOB", "-b", "0"],
        ["sweep", "JOB", "--batch", "1," + str(2**70)],
        ["sweep", "JOB", "--workers", "1000000"],
        ["sweep", "JOB", "--lanes", ",".join(["1"] * 10) + ",300"],
        ["sweep", "JOB", "--threads", ",".join(str(n) for n in range(1, 40))],
        ["sweep", "JOB", "--repeats", "0"],
        ["sweep", "JOB", "--confirm", str(10**9)],
    ],
)
def test_an_option_out_of_range_is_one_line(runner, tmp_path, args):
    args = [str(tmp_path / "job.toml") if a == "JOB" else str(tmp_path) if a == "DIR" else a for a in args]
    _one_line(runner.invoke(main, args), 2, f"'{' '.join(['main', *args[:2 if args[0] == 'rects' else 1]])} --help'")


@pytest.mark.timeout(30)
def test_from_landmarks_with_a_time_stamp_in_a_name_is_one_line(runner, tmp_path):
    # Before: the command hung, making a list of twenty trillion frames.
    (tmp_path / "lms").mkdir()
    (tmp_path / "lms" / "frame_20240101123000.lms").write_text("".join(f"{i} {i}\n" for i in range(60)))
    result = runner.invoke(main, ["rects", "from-landmarks", str(tmp_path / "lms"), "-o", str(tmp_path / "r.json")])
    _one_line(result, 2, "frame_20240101123000.lms: frame number 20240101123000 is beyond")


def test_job_errors_keep_their_exit_status(runner, make_job, monkeypatch):
    def refuse(*args, **kwargs):
        raise JobError("job key run.batch: must be <= 4096, got 5000")

    monkeypatch.setattr("composer.cli.main.load_job", refuse)
    _one_line(runner.invoke(main, ["run", str(make_job()), "-q"]), 2, "job key run.batch")


def test_click_exits_pass_through(runner, make_job, monkeypatch):
    import click

    def leave(*args, **kwargs):
        click.get_current_context().exit(3)

    monkeypatch.setattr("composer.cli.main.load_job", leave)
    result = runner.invoke(main, ["run", str(make_job()), "-q"])
    assert result.exit_code == 3 and result.output == ""
