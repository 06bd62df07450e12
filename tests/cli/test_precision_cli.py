"""``composer fp16`` and ``composer precision`` on the demo's U-Net, as CI runs them (docs/gpu.md)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from composer.cli.main import main
from composer.config.job import load_job
from composer.model.session import Model
from composer.tools.demo import make_demo_assets


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo job (its 320 x 320 U-Net) on a small template, and float16 copies of its model."""
    folder = tmp_path_factory.mktemp("precision") / "demo"
    job = make_demo_assets(folder, frames=12, size=(320, 240))
    for name, extra in (("model16.onnx", []), ("model16io.onnx", ["--fp16-io"])):
        result = CliRunner().invoke(main, ["fp16", str(folder / "model.onnx"), "-o", str(folder / name), *extra])
        assert result.exit_code == 0, result.output
    return job


def _types(path: Path) -> tuple[set[int], set[int]]:
    model = onnx.load(str(path))
    edges = {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    weights = {t.data_type for t in model.graph.initializer}
    return edges, weights


def test_fp16_keeps_float32_inputs_and_outputs_by_default(demo):
    edges, weights = _types(demo.parent / "model16.onnx")
    assert edges == {onnx.TensorProto.FLOAT} and onnx.TensorProto.FLOAT16 in weights
    edges, _ = _types(demo.parent / "model16io.onnx")
    assert edges == {onnx.TensorProto.FLOAT16}


def test_a_model_with_float16_inputs_gets_float16_inputs(demo):
    job = load_job(demo)
    model = Model(dataclasses.replace(job.model, path=demo.parent / "model16io.onnx"), feature_row_shape=(1024,),
                  window=8)
    assert set(model.dtypes.values()) == {np.dtype(np.float16)}
    out = model.run(np.full((2, 6, 320, 320), 0.5, np.float32), np.zeros((2, 8, 1024), np.float32))
    assert out.shape == (2, 3, 320, 320) and np.isfinite(out).all()


@pytest.mark.parametrize("name", ["model16.onnx", "model16io.onnx"])
def test_precision_reports_psnr_as_json(demo, name):
    result = CliRunner().invoke(main, ["precision", str(demo), "--against", str(demo.parent / name),
                                       "--frames", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True and 40 <= report["psnr_db"] < 100 and report["psnr_frame_db"] > report["psnr_db"]
    assert 0 < report["max_abs_diff"] <= 8
    assert [f["frame"] for f in report["frames"]] == [0, 6, 11]  # spread over the 12 output frames


def test_the_same_model_is_identical_and_a_strict_threshold_fails(demo):
    same = CliRunner().invoke(main, ["precision", str(demo), "--against", str(demo.parent / "model.onnx"),
                                     "-n", "2", "--json"])
    assert same.exit_code == 0 and json.loads(same.output)["max_abs_diff"] == 0
    strict = CliRunner().invoke(main, ["precision", str(demo), "--against", str(demo.parent / "model16.onnx"),
                                       "-n", "2", "--min-psnr", "99"])
    assert strict.exit_code == 1
    assert strict.output.splitlines()[-1].endswith("< 99 dB: FAILS")


def test_bad_inputs_are_one_line(demo, tmp_path):
    missing = CliRunner().invoke(main, ["precision", str(demo), "--against", str(tmp_path / "none.onnx")])
    assert missing.exit_code == 2 and "none.onnx: no such model file" in missing.output
    over = CliRunner().invoke(main, ["fp16", str(demo.parent / "model.onnx"), "-o", str(demo.parent / "model.onnx")])
    assert over.exit_code == 2 and "never writes over its inputs" in over.output
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    bad = CliRunner().invoke(main, ["fp16", str(junk), "-o", str(tmp_path / "out.onnx")])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
