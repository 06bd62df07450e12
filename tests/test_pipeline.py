"""The processor against the reference renderer: bit-identical over the grid that matters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from composer.job import load_job
from composer.pipeline import render
from composer.reference import render_reference
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
