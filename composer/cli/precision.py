"""``composer fp16`` and ``composer precision``: make a float16 copy of a model, and check it against the
original before trusting it (docs/gpu.md). Thin, like :mod:`composer.cli.main`; nothing heavy is imported at
import time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from composer.cli.common import overrides, reports_errors
from composer.config.limits import MAX_FRAMES

_DEFAULT_FRAMES = 25  # composer.measure.precision.DEFAULT_FRAMES, without importing it here
_DEFAULT_MIN_PSNR = 40.0  # composer.measure.precision.DEFAULT_MIN_PSNR, likewise


@click.command("fp16")
@click.argument("model", metavar="MODEL.onnx", type=click.Path(path_type=Path))
@click.option("-o", "--output", "target", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the float16 model.")
@click.option("--fp16-io", is_flag=True,
              help="Make the inputs and outputs float16 too (composer feeds them float16 values); by default "
                   "they stay float32, with casts at the edges.")
@reports_errors
def fp16(model: Path, target: Path, fp16_io: bool) -> None:
    """Convert MODEL.onnx to float16 (ONNX Runtime's converter), for GPUs.

    Then check it: composer precision JOB --against MODEL16.onnx.
    """
    from composer.model.fp16 import convert_to_fp16
    from composer.output.safety import check_paths, file_output

    check_paths([("input MODEL.onnx", model)], [file_output("--output", target)])
    convert_to_fp16(model, target, keep_io_types=not fp16_io)
    click.echo(f"wrote {target} (float16{', float32 inputs and outputs' if not fp16_io else ''})")


@click.command("precision")
@click.argument("job_file", metavar="JOB", type=click.Path(path_type=Path))
@click.option("--against", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The other model (a float16 copy, say) whose frames are compared with the job's model's.")
@click.option("-n", "--frames", type=click.IntRange(1, MAX_FRAMES), default=_DEFAULT_FRAMES, show_default=True,
              help="Output frames to compare, spread over the output.")
@click.option("--min-psnr", type=click.FloatRange(0, 100), default=_DEFAULT_MIN_PSNR, show_default=True,
              help="The verdict's threshold: every compared frame's pasted region must reach this PSNR (dB).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-s", "--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any job key, e.g. --set model.provider=cuda (repeatable).")
@reports_errors
def precision(job_file: Path, against: Path, frames: int, min_psnr: float, as_json: bool,
              settings: tuple[str, ...]) -> None:
    """Render the same frames of JOB with its model and with another, and compare them.

    Reports per frame and overall the PSNR of the pasted region and of the whole frame and the largest
    difference (0-255). Exit status 1 when a frame's region falls below --min-psnr.
    """
    from composer.config.job import load_job
    from composer.measure.precision import compare_models

    job = load_job(job_file, overrides(None, None, None, None, None, settings))
    result = compare_models(job, against, frames, min_psnr)
    click.echo(json.dumps(result.as_dict(), indent=2) if as_json else result.text())
    if not result.ok:
        sys.exit(1)
