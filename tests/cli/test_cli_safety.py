"""Inputs are sacred, through the command line: every command that writes refuses, with exit status 2 and one
line naming both paths, an output that would overwrite an input, replace a device, collide or fail late, and
leaves the input byte-identical."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from composer.cli.main import main
from composer.tools.demo import make_demo_assets
from tests.conftest import digest, full_copy, write_frames, write_job, write_wav


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_refused(result: Result, kept: dict[Path, str], *named: object) -> str:
    """Exit 2, one line naming ``named``, and every path of ``kept`` as it was."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("composer: error: "), lines[0]
    for text in named:
        assert str(text) in lines[0], lines[0]
    for path, before in kept.items():
        assert digest(path) == before, f"{path} changed"
    return lines[0]


def kept(*paths: Path) -> dict[Path, str]:
    return {path: digest(path) for path in paths}


@pytest.fixture
def job_file(make_job) -> Path:
    """A small job (template folder, rects, features, model) with an audio file beside it."""
    job_file = make_job()
    write_wav(job_file.parent / "speech.wav", seconds=1.0)
    return job_file


# --- composer run: an output on an input -------------------------------------------------------------------

ON_INPUT: dict[str, tuple[list[object], str, str, str]] = {
    # name: (the command's arguments after the job file ({r}: the job's folder), the output as the message gives
    # it, the input it would destroy, the input's role)
    "video-is-job-file": (["-o", "{r}/job.toml"], "{r}/job.toml", "job.toml", "the job file"),
    "video-is-model": (["-o", "{r}/model.onnx"], "{r}/model.onnx", "model.onnx", "model.path"),
    "video-is-rects": (["-o", "{r}/rects.json"], "{r}/rects.json", "rects.json", "template.rects"),
    "video-is-features": (["-o", "{r}/features.npy"], "{r}/features.npy", "features.npy", "features.path"),
    "video-is-audio": (["-o", "{r}/speech.wav", "--set", "output.audio={r}/speech.wav"], "{r}/speech.wav",
                       "speech.wav", "output.audio"),
    "video-inside-template": (["-o", "{r}/template/frame_0.png"], "{r}/template/frame_0.png", "template",
                              "template.frames"),
    "frames-is-template": (["-f", "{r}/template"], "{r}/template", "template", "template.frames"),
    "frames-inside-template": (["-f", "{r}/template/out"], "{r}/template/out", "template", "template.frames"),
    "frames-contains-job": (["-f", "{r}"], "{r}", "job.toml", "the job file"),
    "set-video-is-rects": (["--set", "output.video={r}/rects.json"], "{r}/rects.json", "rects.json",
                           "template.rects"),
    "dotdot-is-rects": (["-o", "{r}/new/../rects.json"], "{r}/new/../rects.json", "rects.json", "template.rects"),
}


@pytest.mark.parametrize("case", ON_INPUT, ids=list(ON_INPUT))
def test_run_refuses_an_output_on_an_input(job_file, case):
    arguments, given, name, role = ON_INPUT[case]
    root = job_file.parent
    before = kept(root / name, root / "template", root / "job.toml")
    result = invoke("run", job_file, "-q", *(str(a).format(r=root) for a in arguments))
    assert_refused(result, before, f"{given.format(r=root)} ", role, root / name)
    assert not (root / "out").exists() and not (root / "new").exists()  # refused before anything was written


def test_run_refuses_a_video_written_in_the_job_file_onto_its_rects(make_job):
    job_file = make_job(output={"video": "rects.json"})
    rects = job_file.parent / "rects.json"
    before = kept(rects)
    assert_refused(invoke("run", job_file, "-q"), before, rects, "template.rects")


def test_run_refuses_a_symlink_onto_an_input(job_file):
    root = job_file.parent
    (root / "link.mp4").symlink_to(root / "features.npy")
    before = kept(root / "features.npy")
    assert_refused(invoke("run", job_file, "-q", "-o", root / "link.mp4"), before, root / "link.mp4",
                   root / "features.npy", "both resolve to")
    assert (root / "link.mp4").is_symlink()


def test_run_refuses_a_home_path_onto_an_input(job_file, monkeypatch):
    root = job_file.parent
    monkeypatch.setenv("HOME", str(root.parent))
    before = kept(root / "model.onnx")
    assert_refused(invoke("run", job_file, "-q", "-o", f"~/{root.name}/model.onnx"), before, root / "model.onnx",
                   "model.path")


def test_run_refuses_a_video_onto_the_template_video(demo_video_job, tmp_path):
    root = tmp_path / "demo"
    shutil.copytree(demo_video_job.parent, root)
    template = root / "template.mp4"
    before = kept(template)
    assert_refused(invoke("run", root / "job.toml", "-q", "-o", template), before, template, "template.video")


def test_run_refuses_a_trace_onto_an_input(job_file):
    model = job_file.parent / "model.onnx"
    before = kept(model)
    assert_refused(invoke("run", job_file, "-q", "--trace", model), before, model, "--trace", "model.path")


def test_run_refuses_a_trace_onto_a_hard_link_of_an_input(job_file):
    model, trace = job_file.parent / "model.onnx", job_file.parent / "trace.json"
    os.link(model, trace)
    before = kept(model)
    assert_refused(invoke("run", job_file, "-q", "--trace", trace), before, f"--trace {trace} is input model.path")


# --- composer run: special files, folders, collisions, names ----------------------------------------------


def test_run_refuses_a_device_video(job_file):
    device = full_copy(job_file.parent / "full")
    before = kept(device)
    assert_refused(invoke("run", job_file, "-q", "-o", device), before, device, "character device")
    assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_run_refuses_a_video_that_is_a_folder_before_rendering(job_file):
    folder = job_file.parent / "video.mp4"
    folder.mkdir()
    assert_refused(invoke("run", job_file, "-q", "-o", folder), kept(folder), folder, "is a folder")
    assert not (job_file.parent / "out").exists()


@pytest.mark.parametrize("where", ["command line", "job file"])
def test_run_refuses_a_video_path_with_a_trailing_slash(make_job, where):
    job_file = make_job(output={"video": "vid/"} if where == "job file" else None)
    root = job_file.parent
    args = ["-o", f"{root}/vid/"] if where == "command line" else []
    assert_refused(invoke("run", job_file, "-q", *args), {}, "output.video", "vid/", "ends with a slash")
    assert not (root / "vid").exists() and not (root / "out").exists()


@pytest.mark.parametrize(("args", "named"), [
    (["-f", "{r}/out", "-o", "{r}/out"], ["output.frames {r}/out is output.video {r}/out"]),
    (["-f", "{r}/out", "-o", "{r}/out/v.mp4"], ["output.frames {r}/out contains output.video {r}/out/v.mp4"]),
    (["-f", "{r}/out", "--trace", "{r}/out/t.json"], ["output.frames {r}/out contains --trace {r}/out/t.json"]),
    (["-o", "{r}/v.mp4", "--trace", "{r}/v.mp4"], ["output.video {r}/v.mp4 is --trace {r}/v.mp4"]),
], ids=["video-is-frames", "video-inside-frames", "trace-inside-frames", "trace-is-video"])
def test_run_refuses_colliding_outputs(job_file, args, named):
    root = job_file.parent
    result = invoke("run", job_file, "-q", *(a.format(r=root) for a in args))
    assert_refused(result, {}, *(n.format(r=root) for n in named), "two outputs cannot share a path")
    assert not (root / "out").exists()


def test_run_refuses_a_video_name_too_long_for_its_partial_file(job_file):
    root = job_file.parent
    limit = os.pathconf(root, "PC_NAME_MAX")
    video = root / ("v" * (limit - 14) + ".mp4")  # it and its parts folder fit; .NAME.partial.mp4 does not
    assert_refused(invoke("run", job_file, "-q", "-o", video), {}, video, "name too long", ".partial.mp4")
    assert not (root / "out").exists()


# --- composer rects -------------------------------------------------------------------------------------


@pytest.fixture
def template(tmp_path) -> Path:
    return write_frames(tmp_path / "template", 4)


@pytest.fixture
def rects_file(tmp_path) -> Path:
    path = tmp_path / "rects.json"
    path.write_text("[[2, 2, 30, 30], null, [4, 4, 40, 40], null]\n")
    return path


def test_rects_show_refuses_a_sheet_inside_the_template_folder(tmp_path, template, rects_file):
    out = tmp_path / "template" / "frame_0.png"
    before = kept(template, rects_file)
    assert_refused(invoke("rects", "show", template, rects_file, "-o", out), before, f"-o {out} lies inside",
                   f"input TEMPLATE {template}")


def test_rects_show_refuses_a_sheet_onto_a_still_template(tmp_path, template):
    still, rects_file = template / "frame_2.png", tmp_path / "one.json"
    rects_file.write_text("[[2, 2, 30, 30]]\n")
    before = kept(still, rects_file)
    assert_refused(invoke("rects", "show", still, rects_file, "-o", still), before, f"-o {still} is input TEMPLATE")


def test_rects_show_refuses_a_device(tmp_path, template, rects_file):
    device = full_copy(tmp_path / "full.png")
    assert_refused(invoke("rects", "show", template, rects_file, "-o", device), kept(device), device,
                   "character device")


def _landmarks(folder: Path) -> Path:
    folder.mkdir()
    for t in range(3):
        (folder / f"{t}.lms").write_text("".join(f"{5 + t} {6 + k}\n" for k in range(110)))
    return folder


@pytest.mark.parametrize(("target", "role"), [("lms/0.lms", "DIR"), ("template/frame_1.png", "--template")])
def test_rects_from_landmarks_refuses_an_output_on_an_input(tmp_path, template, target, role):
    lms = _landmarks(tmp_path / "lms")
    out = tmp_path / target
    before = kept(lms, template)
    assert_refused(invoke("rects", "from-landmarks", lms, "-t", template, "-o", out), before, out, role)


# --- composer profile and sweep -------------------------------------------------------------------------


@pytest.mark.parametrize(("option", "target", "role"), [
    ("--report", "job.toml", "the job file"),
    ("--trace", "model.onnx", "model.path"),
    ("--report", "out/RESULTS.md", "the job's output.frames"),
])
def test_profile_refuses_its_files_on_the_job(job_file, option, target, role):
    root = job_file.parent
    (root / "out").mkdir()
    (root / "out" / "000000.png").write_bytes(b"a finished render")
    before = kept(root / "job.toml", root / "model.onnx", root / "out")
    assert_refused(invoke("profile", job_file, "-n", 3, option, root / target), before, root / target, role)


@pytest.mark.parametrize(("option", "target", "role"), [
    ("--report", "rects.json", "template.rects"),
    ("--picture", "features.npy", "features.path"),
])
def test_sweep_refuses_its_files_on_the_job(job_file, option, target, role):
    root = job_file.parent
    before = kept(root / target)
    result = invoke("sweep", job_file, "-n", 3, "--modes", "segments", "--batch", 1, "--workers", 1,
                    "--repeats", 1, "--confirm", 0, option, root / target)
    assert_refused(result, before, root / target, role)


# --- composer demo --------------------------------------------------------------------------------------


def test_demo_refuses_a_folder_holding_a_users_job(job_file):
    root = job_file.parent
    before = kept(root)
    assert_refused(invoke("demo", "--out", root, "-n", 3, "--size", "64x64", "-q"), before, root,
                   root / "job.toml", "not composer's demo")


def test_demo_refuses_a_folder_with_other_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    write_job(folder / "notes.toml", {"note": {"text": "mine"}})
    before = kept(folder)
    assert_refused(invoke("demo", "--out", folder, "-n", 3, "--size", "64x64", "-q"), before, folder / "notes.toml")


def test_demo_runs_again_in_its_own_folder(tmp_path):
    folder = tmp_path / "demo"
    make_demo_assets(folder, frames=3, size=(64, 64), template_frames=2)
    (folder / "out").mkdir()
    result = invoke("demo", "--out", folder, "-n", 3, "--size", "64x64", "-q")
    assert result.exit_code == 0, result.output
    assert (folder / "out" / "result.mp4").is_file()
