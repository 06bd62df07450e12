"""``model.io_binding`` on the CPU provider: the bound path (inputs and output in buffers allocated once per lane,
every call padded to the run's batch) gives the same images as ``session.run``, in both renderers."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.model.binding import BoundCalls
from composer.model.zoo import build_unet
from tests.conftest import read_folder

WINDOW = 32  # the U-Net halves its input four times


@pytest.mark.parametrize("mode", ["pipeline", "segments"])
def test_io_binding_on_and_off_give_identical_images(make_job, tmp_path, monkeypatch, mode):
    calls = []
    bound_run = BoundCalls.run
    monkeypatch.setattr(BoundCalls, "run", lambda self, feed: calls.append(len(feed["image"])) or bound_run(self, feed))
    job_file = make_job(frames=5, outputs=11, window=4)
    build_unet(job_file.parent / "model.onnx", window=WINDOW, in_channels=6, feature_shape=(20,), base=4, seed=5)
    frames = {}
    for binding in ("true", "false"):
        out = tmp_path / f"out-{binding}"
        result = CliRunner().invoke(main, [
            "run", str(job_file), "--set", f"model.crop={WINDOW + 4}", "--set", f"run.mode={mode}",
            "--set", "run.batch=3", "--set", "model.provider=cpu", "--set", f"model.io_binding={binding}",
            "--set", f"output.frames={out}", "--quiet"])
        assert result.exit_code == 0, result.output
        frames[binding] = read_folder(out)
        if binding == "true":
            assert calls and set(calls) == {3}  # bound, and every call of the run's batch
    assert len(frames["true"]) == 11
    for i, (a, b) in enumerate(zip(frames["true"], frames["false"])):
        assert np.array_equal(a, b), f"frame {i} differs"
