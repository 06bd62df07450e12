"""The processor against the reference renderer: bit-identical over the grid that matters."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from composer.config.job import load_job
from composer.model.session import Model
from composer.rendering.reference import render_reference
from composer.rendering.render import render
from tests.conftest import job_factory, read_folder, write_frames


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


UNET_CROP, UNET_WINDOW = 36, 32  # border 2; the U-Net halves its window four times, so 16 divides it


def _unet_inputs(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return (rng.random((count, 6, UNET_WINDOW, UNET_WINDOW), dtype=np.float32),
            rng.normal(size=(count, 4, 5)).astype(np.float32))


@pytest.fixture(scope="module")
def unet_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """A job whose model is the demo's U-Net built small (4 channels at the top, a 32 x 32 window): a 6-frame
    template, 17 output frames, a frame without a rectangle; and its reference frames."""
    from composer.model.zoo import build_unet

    job_file = job_factory(tmp_path_factory.mktemp("unet"))(frames=6, outputs=17, nulls=(2,))
    build_unet(job_file.parent / "model.onnx", window=UNET_WINDOW, in_channels=6, feature_shape=(4, 5), base=4,
               seed=5)
    job_file.write_text(job_file.read_text().replace("crop = 24", f"crop = {UNET_CROP}"))
    render_reference(load_job(job_file))
    return job_file, read_folder(job_file.parent / "out")


@pytest.mark.parametrize("threads", [1, 2])
def test_the_small_unet_predicts_each_image_the_same_in_any_batch(unet_job, threads):
    """The precondition of the bit-identity below (docs/design.md section 3): on this machine the U-Net's
    output for an image does not depend on the batch around it, nor on ONNX Runtime's threads. If this fails,
    the renders below may differ by a level through the model alone."""
    import onnxruntime as ort

    job_file, _ = unet_job
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(job_file.parent / "model.onnx"), options, providers=["CPUExecutionProvider"])
    images, audio = _unet_inputs(6)
    one = np.concatenate([session.run(None, {"image": images[k:k + 1], "audio": audio[k:k + 1]})[0]
                          for k in range(6)])
    three = np.concatenate([session.run(None, {"image": images[k:k + 3], "audio": audio[k:k + 3]})[0]
                            for k in (0, 3)])
    assert not np.array_equal(one[0], one[1])  # the images really differ
    np.testing.assert_array_equal(three, one)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("mode", "workers", "chunk"), [
    *(("pipeline", workers, chunk) for workers in (1, 3) for chunk in (2, "auto")),
    ("segments", None, "auto"),  # the segment renderer has no composite workers; it needs the whole template
])
@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
def test_unet_renders_match_the_reference_bit_for_bit(unet_job, tmp_path, caplog, mode, batch, workers, lanes,
                                                      chunk):
    """A convolutional model through both renderers, any batch, workers, lanes and chunk: the reference's
    frames exactly."""
    job_file, expected = unet_job
    run = {"mode": mode, "batch": batch, "lanes": lanes, "chunk": chunk, "workers": workers}
    job = load_job(job_file, {"output": {"frames": str(tmp_path / "out")},
                              "run": {k: v for k, v in run.items() if v is not None}})
    with caplog.at_level(logging.INFO, logger="composer"):
        stats = render(job)
    assert stats.frames == 17
    assert f"{mode}: " in caplog.text and "rendering with the pipeline" not in caplog.text  # the renderer asked for
    _assert_same(expected, read_folder(tmp_path / "out"))


@pytest.mark.timeout(60)
def test_a_cheap_model_renders_on_one_lane_of_one_thread(make_job, tmp_path, monkeypatch, caplog):
    """On a CPU with cores to share, a model whose one-frame cost is far below the rest of a frame's work (the
    elementwise model's 20 x 20 window, tens of microseconds, on 640 x 360 frames, whose threshold is 0.9 ms on
    2 cores) is timed for real, rendered by the pipeline on one lane of one thread, and gives the reference's
    frames."""
    monkeypatch.undo()  # conftest makes every model expensive; this one is timed for real
    monkeypatch.setattr("composer.config.defaults.usable_cores", lambda: 2)
    job_file = make_job(frames=4, outputs=6, nulls=(1,))
    write_frames(job_file.parent / "template", 4, size=(640, 360))  # the rectangles stay inside
    render_reference(load_job(job_file, {"output": {"frames": str(tmp_path / "reference")}}))
    ran = {}  # the sessions that ran the render's batches, by id: their intra-op threads
    run = Model.run

    def recording(self, *args):
        if threading.current_thread().name.startswith("composer-model"):
            ran[id(self)] = self.threads
        return run(self, *args)

    monkeypatch.setattr(Model, "run", recording)
    job = load_job(job_file, {"output": {"frames": str(tmp_path / "out")}, "run": {"mode": "pipeline"}})
    with caplog.at_level(logging.INFO, logger="composer"):
        stats = render(job)
    assert stats.frames == 6
    assert "one lane on one thread keeps up" in caplog.text
    assert "pipeline: model 1 lane x 1 thread" in caplog.text
    assert list(ran.values()) == [1]
    _assert_same(read_folder(tmp_path / "reference"), read_folder(tmp_path / "out"))
