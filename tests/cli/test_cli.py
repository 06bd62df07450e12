"""The ``composer`` command through click's CliRunner: help, runs, overrides and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from composer import __version__
from composer.cli.main import main
from composer.errors import JobError
from tests.conftest import read_folder


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _assert_one_line_error(result, *named: str) -> None:
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("composer: error: ")
    for text in named:
        assert text in lines[0]
    assert result.stdout == ""


def test_version(runner):
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"composer, version {__version__}"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], ["run", "demo", "--debug", "--version"]),
        (
            ["run"],
            [
                "JOB",
                "--reference",
                "--batch",
                "--workers",
                "--chunk",
                "--frames",
                "--video",
                "--set",
                "--quiet",
            ],
        ),
        (["demo"], ["--out", "--frames", "--size", "--quiet"]),
    ],
)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(runner, args, words, flag):
    result = runner.invoke(main, [*args, flag])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    for word in words:
        assert word in result.output


def test_run_writes_the_frames(runner, make_job):
    job = make_job()
    result = runner.invoke(main, ["run", str(job), "-q"])
    assert result.exit_code == 0, result.output
    assert result.output == ""
    frames = read_folder(job.parent / "out")
    assert len(frames) == 23
    assert sorted(p.name for p in (job.parent / "out").iterdir())[:2] == ["000000.png", "000001.png"]
    assert frames[0].shape == (48, 64, 3)


def test_run_prints_a_summary_without_quiet(runner, make_job):
    job = make_job(outputs=None, frames=4)
    result = runner.invoke(main, ["run", str(job)])
    assert result.exit_code == 0, result.output
    assert "wrote 4 frames to" in result.stdout


def test_reference_gives_the_same_frames(runner, make_job):
    job = make_job()
    out, ref = job.parent / "out", job.parent / "ref"
    assert runner.invoke(main, ["run", str(job), "-q"]).exit_code == 0
    result = runner.invoke(main, ["run", str(job), "--reference", "-q", "-f", str(ref)])
    assert result.exit_code == 0, result.output
    expected, got = read_folder(out), read_folder(ref)
    assert len(got) == len(expected) == 23
    for i, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert np.array_equal(a, b), f"frame {i} differs"


def test_set_overrides(runner, make_job, tmp_path):
    job = make_job()
    other = tmp_path / "other"
    result = runner.invoke(
        main, ["run", str(job), "-q", "--set", "run.batch=2", "--set", f"output.frames={other}"]
    )
    assert result.exit_code == 0, result.output
    assert len(read_folder(other)) == 23
    assert not (job.parent / "out").exists()
    reference = runner.invoke(main, ["run", str(job), "-q", "--reference"])
    assert reference.exit_code == 0
    assert all(
        np.array_equal(a, b) for a, b in zip(read_folder(job.parent / "out"), read_folder(other), strict=True)
    )


def test_relative_frames_option_follows_the_current_directory(runner, make_job, tmp_path, monkeypatch):
    job = make_job(outputs=None, frames=3)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["run", str(job), "-q", "-f", "here"])
    assert result.exit_code == 0, result.output
    assert len(read_folder(tmp_path / "here")) == 3


def test_unknown_key_is_a_one_line_error(runner, make_job):
    job = make_job()
    result = runner.invoke(main, ["run", str(job), "-q", "--set", "run.nonsense=1"])
    assert result.exit_code == 2
    _assert_one_line_error(result, "run.nonsense")
    assert not (job.parent / "out").exists()


@pytest.mark.parametrize(
    ("setting", "named"),
    [("run.batch=zero", "run.batch"), ("run", "section.key=value"), ("render.batch=1", "[render]")],
)
def test_bad_settings_are_one_line_errors(runner, make_job, setting, named):
    result = runner.invoke(main, ["run", str(make_job()), "-q", "--set", setting])
    assert result.exit_code == 2
    _assert_one_line_error(result, named)


def test_missing_job_file(runner, tmp_path):
    missing = tmp_path / "nothere.toml"
    result = runner.invoke(main, ["run", str(missing), "-q"])
    assert result.exit_code == 2
    _assert_one_line_error(result, str(missing))


def test_input_error_names_the_file(runner, make_job):
    job = make_job()
    (job.parent / "rects.json").write_text("[[0, 0, 10, 10]]")  # one entry for a 7-frame template
    result = runner.invoke(main, ["run", str(job), "-q"])
    assert result.exit_code == 2
    _assert_one_line_error(result, "rects.json", "frame 1")


@pytest.mark.parametrize("chunk", ["0", "-3", "lots"])
def test_bad_chunk_is_a_usage_error(runner, make_job, chunk):
    job = make_job()
    result = runner.invoke(main, ["run", str(job), "-q", "--chunk", chunk])
    assert result.exit_code == 2
    _assert_one_line_error(result, "--chunk", "run --help")
    assert not (job.parent / "out").exists()


@pytest.mark.parametrize("args", [["--batch", "0"], ["--workers", "0"], ["--unknown"]])
def test_other_usage_errors(runner, make_job, args):
    result = runner.invoke(main, ["run", str(make_job()), "-q", *args])
    assert result.exit_code == 2
    _assert_one_line_error(result, args[0], "run --help")


@pytest.mark.parametrize("chunk", ["1", "auto"])
def test_chunk_option(runner, make_job, chunk):
    job = make_job(outputs=None, frames=4)
    result = runner.invoke(main, ["run", str(job), "-q", "--chunk", chunk, "-b", "3", "-w", "2"])
    assert result.exit_code == 0, result.output
    assert len(read_folder(job.parent / "out")) == 4


def test_debug_lets_the_exception_through(runner, make_job):
    result = runner.invoke(main, ["--debug", "run", str(make_job()), "-q", "--set", "run.nonsense=1"])
    assert isinstance(result.exception, JobError)
    assert "run.nonsense" in str(result.exception)
    assert result.exit_code != 0
    assert "composer: error:" not in result.output
