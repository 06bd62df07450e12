"""composer.output.safety: outputs that would destroy an input, replace a special file, collide or fail late are
refused before anything is written, with one line naming both paths."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from composer.config.job import load_job
from composer.errors import JobError
from composer.output.safety import Output, check_job, check_paths, file_output, video_output
from composer.rendering.reference import render_reference
from composer.rendering.render import render
from tests.conftest import digest, full_copy


def refused(inputs: list[tuple[str, Path | str]], outputs: list[Output], *named: object) -> str:
    with pytest.raises(JobError) as caught:
        check_paths(inputs, outputs)
    message = str(caught.value)
    assert "\n" not in message
    for text in named:
        assert str(text) in message, message
    return message


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A job's folder: a template folder of two frames, a rects file, a model."""
    (tmp_path / "template").mkdir()
    for name in ("0.png", "1.png"):
        (tmp_path / "template" / name).write_bytes(b"frame")
    (tmp_path / "rects.json").write_text("[]")
    (tmp_path / "model.onnx").write_bytes(b"model")
    return tmp_path


def inputs_of(tree: Path) -> list[tuple[str, Path | str]]:
    return [("input template.frames", tree / "template"), ("input template.rects", tree / "rects.json"),
            ("input model.path", tree / "model.onnx")]


@pytest.mark.parametrize(("output", "relation", "named"), [
    (lambda t: video_output("output.video", t / "rects.json"), "is", "rects.json"),
    (lambda t: Output("output.frames", t / "template", folder=True), "is", "template"),
    (lambda t: Output("output.frames", t / "template" / "out", folder=True), "lies inside", "template"),
    (lambda t: video_output("output.video", t / "template" / "0.png"), "lies inside", "template"),
    (lambda t: Output("output.frames", t, folder=True), "contains", "template"),
    (lambda t: file_output("-o", t / "new" / ".." / "model.onnx"), "is", "model.onnx"),
])
def test_an_output_on_an_input_is_refused(tree, output, relation, named):
    out = output(tree)
    message = refused(inputs_of(tree), [out], os.fspath(out.path), f" {relation} ", tree / named)
    assert "never writes over its inputs" in message


def test_symlinks_are_followed_and_named(tree):
    (tree / "link.mp4").symlink_to(tree / "rects.json")
    refused(inputs_of(tree), [video_output("output.video", tree / "link.mp4")],
            tree / "link.mp4", tree / "rects.json", f"both resolve to {tree / 'rects.json'}")


def test_a_hard_link_to_an_input_is_refused(tree):
    os.link(tree / "model.onnx", tree / "trace.json")
    refused(inputs_of(tree), [file_output("--trace", tree / "trace.json", temporary=False)],
            f"--trace {tree / 'trace.json'} is input model.path {tree / 'model.onnx'}")


def test_home_is_expanded(tree, monkeypatch):
    monkeypatch.setenv("HOME", str(tree))
    refused(inputs_of(tree), [file_output("--report", "~/rects.json")], "~/rects.json", tree / "rects.json")


def test_a_device_output_is_refused(tree):
    device = full_copy(tree / "full")
    refused(inputs_of(tree), [video_output("output.video", device)], device, "character device")
    assert stat.S_ISCHR(os.stat(device).st_mode)


def test_a_fifo_output_is_refused(tree):
    os.mkfifo(tree / "pipe")
    refused(inputs_of(tree), [file_output("--report", tree / "pipe")], tree / "pipe", "FIFO")


def test_a_symlink_to_a_device_is_refused(tree):
    device = full_copy(tree / "full")
    (tree / "out.mp4").symlink_to(device)
    refused(inputs_of(tree), [video_output("output.video", tree / "out.mp4")], tree / "out.mp4", "character device")


def test_a_frames_folder_that_is_a_file_is_refused(tree):
    (tree / "out").write_text("not a folder")
    refused(inputs_of(tree), [Output("output.frames", tree / "out", folder=True)], tree / "out", "not a folder")


def test_a_video_that_is_a_folder_is_refused(tree):
    (tree / "video.mp4").mkdir()
    refused(inputs_of(tree), [video_output("output.video", tree / "video.mp4")], tree / "video.mp4", "is a folder")


def test_a_file_name_with_a_trailing_slash_is_refused(tree):
    refused(inputs_of(tree), [file_output("-o", f"{tree}/sheet/")], f"{tree}/sheet/", "ends with a slash")


@pytest.mark.parametrize(("first", "second", "relation"), [
    (lambda t: Output("output.frames", t / "out", folder=True), lambda t: video_output("output.video", t / "out"),
     "is"),
    (lambda t: Output("output.frames", t / "out", folder=True),
     lambda t: video_output("output.video", t / "out" / "v.mp4"), "contains"),
    (lambda t: file_output("--trace", t / "t.json", temporary=False), lambda t: file_output("--report", t / "t.json"),
     "is"),
])
def test_colliding_outputs_are_refused(tree, first, second, relation):
    a, b = first(tree), second(tree)
    message = refused(inputs_of(tree), [a, b], os.fspath(a.path), f" {relation} ", os.fspath(b.path))
    assert "two outputs cannot share a path" in message


def test_a_name_too_long_for_the_hidden_partial_video_is_refused(tree):
    limit = os.pathconf(tree, "PC_NAME_MAX")
    name = "v" * (limit - 14) + ".mp4"  # it and its .NAME.parts folder fit, but .NAME.partial.mp4 does not
    refused(inputs_of(tree), [video_output("output.video", tree / name)], "name too long", ".mp4.partial.mp4 is",
            str(limit))
    check_paths(inputs_of(tree), [video_output("output.video", tree / name[20:])])


def test_a_name_too_long_for_a_folder_to_create_is_refused(tree):
    limit = os.pathconf(tree, "PC_NAME_MAX")
    refused(inputs_of(tree), [Output("output.frames", tree / ("f" * (limit + 1)) / "frames", folder=True)],
            "name too long")


def test_separate_outputs_pass(tree):
    device = full_copy(tree / "full")
    check_paths([*inputs_of(tree), ("input device", device)],
                [Output("output.frames", tree / "out", folder=True), video_output("output.video", tree / "v.mp4"),
                 file_output("--report", tree / "reports" / "RESULTS.md")])


def test_check_job_names_every_input(make_job, tmp_path):
    job_file = make_job()
    root = job_file.parent
    for name, key in [("job.toml", "the job file"), ("features.npy", "features.path"), ("model.onnx", "model.path"),
                      ("rects.json", "template.rects")]:
        job = load_job(job_file, {"output": {"video": str(root / name)}})
        with pytest.raises(JobError, match=key):
            check_job(job)


@pytest.mark.parametrize("renderer", [render, render_reference])
def test_the_library_refuses_before_writing(make_job, renderer):
    """composer.render and the reference loop refuse an output on an input, whoever calls them."""
    job_file = make_job()
    rects = job_file.parent / "rects.json"
    before = digest(rects)
    job = load_job(job_file, {"output": {"video": str(rects)}})
    with pytest.raises(JobError, match="is input template.rects"):
        renderer(job)
    assert digest(rects) == before
    assert not (job_file.parent / "out").exists()  # nothing written, not even the frames folder
