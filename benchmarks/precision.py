"""A float16 copy of the demo's U-Net against the float32 model: how far its frames are, and how fast each runs.

    python -m benchmarks.precision --frames 250 --compare 25 --out bench-precision --report RESULTS.md

It writes the heavy benchmark job (the demo's U-Net, :mod:`benchmarks.run`) under ``--out``, converts its model
with ``composer fp16`` (float32 at the model's edges), compares ``--compare`` output frames rendered with each
model as ``composer precision`` does (PSNR of the pasted region and of the whole frame, largest difference), then
renders the whole job with each model and reports their fps. On a CPU, ONNX Runtime runs most float16 operators
through casts, so the float16 model is no faster there: the speed that matters is a GPU's (``scripts/gpu-check``);
the PSNR is the same wherever it is measured, up to the provider's rounding.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.run import _size, make_job
from composer.config.job import load_job
from composer.measure.machine import describe_machine
from composer.measure.precision import compare_models
from composer.measure.report import markdown_table, write_section
from composer.model.fp16 import convert_to_fp16
from composer.rendering.render import render


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250, help="output frames rendered for the speed (default 250)")
    parser.add_argument("--compare", type=int, default=25, help="output frames compared (default 25)")
    parser.add_argument("--size", type=_size, default=(1280, 720), help="template size WxH (default 1280x720)")
    parser.add_argument("--out", type=Path, default=Path("bench-precision"), help="folder for the job and outputs")
    parser.add_argument("--report", type=Path, help="write the table as a section of this Markdown file")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.compare < 1:
        parser.error("--frames and --compare must be at least 1")
    machine = describe_machine().summary()
    print(f"machine: {machine}", flush=True)
    job_file = make_job(args.out, "heavy", args.frames, args.size)
    job = load_job(job_file)
    fp16 = convert_to_fp16(job.model.path, args.out / "model16.onnx")
    result = compare_models(job, fp16, frames=args.compare)
    print(result.text().splitlines()[-1], flush=True)
    speeds = {}
    for name, model in (("float32", job.model.path), ("float16", fp16)):
        stats = render(dataclasses.replace(job, model=dataclasses.replace(job.model, path=model)), overwrite=True)
        speeds[name] = stats.fps
        print(f"{name}: {stats.frames} frames at {stats.fps:.1f} fps", flush=True)
    if args.report is not None:
        command = (f"python -m benchmarks.precision --frames {args.frames} --compare {args.compare} "
                   f"--size {args.size[0]}x{args.size[1]}")
        rows = [("float32 (the job's)", f"{speeds['float32']:.1f}", "-", "-", "-"),
                ("float16 (`composer fp16`)", f"{speeds['float16']:.1f}", f"{result.psnr_db:.2f}",
                 f"{result.psnr_frame_db:.2f}", str(result.max_abs_diff))]
        body = "\n".join([
            "## FP16 against FP32 (the demo's U-Net)", "",
            f"`{command}` on {machine}: the float16 copy's frames against the float32 model's ({len(result.frames)} "
            f"output frames; worst frame's region {result.worst_db:.2f} dB, verdict at 40 dB: "
            f"{'ok' if result.ok else 'fails'}), and each model's render speed on this CPU.", "",
            *markdown_table(("model", "fps", "region PSNR dB", "frame PSNR dB", "max abs diff"), rows, "lrrrr"),
        ])
        write_section(args.report, "precision", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
