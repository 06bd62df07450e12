"""The processor against the reference renderer: bit-identical over the grid that matters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from composer.config.job import load_job
from composer.rendering.reference import render_reference
from composer.rendering.render import render
from tests.conftest import job_factory, read_folder


def _render_pair(job_file: Path, **run: object) -> tuple[list[np.ndarray], list[np.ndarray]]:
    base = load_job(job_file)
    reference = load_job(job_file, {"output": {"frames": str(job_file.parent / "reference")}})
    render_reference(reference)
    candidate = load_job(job_file, {"output": {"frames": str(job_file.parent / "candidate")}, "run": run})
    render(candidate)
    assert base.output.frames is not None
    return read_folder(job_file.parent / "reference"), read_folder(job_file.parent / "candidate")


def _assert_same(expected: list[np.ndarray], actual: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for i, (a, b) in enumerate(zip(expected, actual)):
        assert np.array_equal(a, b), f"frame {i} differs"


@pytest.fixture(scope="module")
def grid_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """One job (7-frame template, 23 output frames, a null rectangle) and its reference frames."""
    job_file = job_factory(tmp_path_factory.mktemp("grid"))()
    render_reference(load_job(job_file))
    return job_file, read_folder(job_file.parent / "out")


@pytest.mark.parametrize("chunk", ["auto", 1, 2, 5])
@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("batch", [1, 3, 4, 8])
def test_processor_matches_reference(grid_job, tmp_path, batch, workers, chunk):
    job_file, expected = grid_job
    out = tmp_path / "out"
    job = load_job(job_file, {"output": {"frames": str(out)},
                              "run": {"batch": batch, "workers": workers, "chunk": chunk}})
    stats = render(job)
    assert stats.frames == 23
    _assert_same(expected, read_folder(out))


@pytest.mark.parametrize(
    "shape",
    [
        {"frames": 1, "outputs": 9, "nulls": ()},  # T = 1
        {"frames": 5, "outputs": None, "nulls": (0, 4)},  # no features, nulls at both ends
        {"frames": 6, "outputs": 40, "nulls": (1, 2), "loop": "repeat"},
        {"frames": 9, "outputs": 9, "nulls": (), "loop": "once", "inputs": ("crop",), "color": "rgb"},
        {"frames": 4, "outputs": 11, "nulls": (), "blend": "feather", "feather": 3},
        {"frames": 6, "outputs": 13, "nulls": (), "model_batch": 4},  # fixed batch, padded last batch
    ],
)
@pytest.mark.parametrize("run", [{"batch": 3, "workers": 2, "chunk": 2}, {"batch": 4, "workers": 4}])
def test_shapes_match_reference(make_job, shape, run):
    expected, actual = _render_pair(make_job(**shape), **run)
    _assert_same(expected, actual)


def test_all_frames_pass_through(make_job):
    job_file = make_job(frames=3, outputs=8, nulls=(0, 1, 2))
    expected, actual = _render_pair(job_file, batch=2, workers=2, chunk=1)
    _assert_same(expected, actual)


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "g": "3", "bf": "2"}  # short GOPs and B-frames: seeks must land exactly
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode())


def test_video_template_with_chunk_seeks_matches_reference(make_job):
    """A video template rendered in chunks of 2 (seeking back on every ping-pong turn) equals the reference."""
    job_file = make_job(frames=9, outputs=30, nulls=(4,))
    root = job_file.parent
    frames = read_folder_any(root / "template")
    _write_video(root / "template.mp4", frames)
    text = job_file.read_text().replace('frames = "template"', 'video = "template.mp4"')
    job_file.write_text(text)
    expected, actual = _render_pair(job_file, batch=4, workers=2, chunk=2)
    _assert_same(expected, actual)


def read_folder_any(folder: Path) -> list[np.ndarray]:
    import cv2

    paths = sorted(folder.glob("*.png"), key=lambda p: int(p.stem.split("_")[1]))
    return [cv2.imread(str(p)) for p in paths]


def test_unet_within_one_level_of_reference(tmp_path):
    """The demo's U-Net (convolutions whose rounding may change with the batch) stays within one level."""
    from composer.model.zoo import build_unet

    root = tmp_path
    factory = job_factory(root)
    job_file = factory(frames=5, outputs=14, nulls=())
    build_unet(job_file.parent / "model.onnx", window=32, in_channels=6, feature_shape=(4, 5), base=4)
    text = job_file.read_text().replace("crop = 24", "crop = 36")
    job_file.write_text(text)
    expected, actual = _render_pair(job_file, batch=4, workers=2, chunk=3)
    assert len(expected) == len(actual) == 14
    for i, (a, b) in enumerate(zip(expected, actual)):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max()
        assert diff <= 1, f"frame {i} differs by {diff} levels"
