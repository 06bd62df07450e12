"""The GPU check: the two benchmark jobs on CUDA and TensorRT, at batch 1, 4 and 8, in float32 and float16.

    scripts/gpu-check --report RESULTS.md            # on a machine with an NVIDIA GPU and onnxruntime-gpu
    scripts/gpu-check --provider cpu --quick         # the same code path on a CPU, in seconds (a dry run)

For each benchmark model (``heavy``: the demo's U-Net; ``light``: one convolution, see benchmarks/run.py) it
writes the demo job under ``--out``, then profiles it (:func:`composer.measure.profile.profile_job`: the stages
alone, the CPU and GPU bounds, a render in a fresh process) for each provider, batch and precision, and prints
fps, the bound (the lower of the host's CPU bound and the model's own on the GPU), what sets it, and the
efficiency (fps / bound). FP16 is the model converted by ``composer fp16`` on CUDA and TensorRT's own float16
kernels (``model.fp16``) on TensorRT; the heavy model's float16 copy is also checked against the float32 one
(``composer precision``, PSNR of the pasted region). TensorRT's engines are built once per model and precision,
before the timed runs, into a cache folder under ``--out`` (one optimisation profile, batch 1 to 8, serves
every batch), so the timings are those of a cached engine, as a user's second render has.

The run stops starting new measurements once ``--minutes`` have passed (the rest are reported as skipped), so
the whole check finishes in about that time. Where no NVIDIA GPU or no GPU build of ONNX Runtime is found it
says so in one line and exits 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.run import _size, make_job
from composer.config.job import Job, load_job
from composer.errors import ComposerError
from composer.measure.machine import describe_machine
from composer.measure.report import markdown_table, text_table, write_section
from composer.model.providers import PROVIDERS

MAX_BATCH = 8  # the TensorRT profile's largest batch: one engine serves 1, 4 and 8


class NoGpu(Exception):
    """This machine cannot run the check: the message says why, in one line."""


@dataclass(frozen=True)
class Point:
    """One measured configuration, or one skipped."""

    model: str
    provider: str
    batch: int
    precision: str
    fps: float | None = None
    gpu_bound: float | None = None  # the model's own speed on the accelerator
    bound: float | None = None
    limit: str = ""
    efficiency: float | None = None
    runs_on: str = ""
    note: str = ""

    def cells(self) -> list[str]:
        figures = ["-"] * 5 if self.fps is None else [
            f"{self.fps:.1f}", f"{self.gpu_bound:.1f}" if self.gpu_bound else "-",
            f"{self.bound:.1f}" if self.bound else "-", self.limit,
            f"{100 * self.efficiency:.0f}%" if self.efficiency is not None else "-"]
        return [self.model, self.provider, str(self.batch), self.precision, *figures, self.runs_on or "-",
                self.note]


HEADER = ["model", "provider", "batch", "precision", "fps", "GPU bound fps", "bound fps", "bound by", "efficiency",
          "runs on", "note"]


def check_machine(providers: Sequence[str]) -> str:
    """What the GPU is, or :class:`NoGpu` with the reason in one line (nothing is checked for ``cpu``)."""
    if set(providers) <= {"cpu"}:
        return "no GPU (a dry run on the CPU provider)"
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise NoGpu("no NVIDIA GPU: nvidia-smi is not on PATH (run scripts/gpu-check --provider cpu --quick for a "
                    "dry run on the CPU)")
    try:
        done = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NoGpu(f"no NVIDIA GPU: nvidia-smi failed ({exc})") from None
    names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not names:
        raise NoGpu(f"no NVIDIA GPU: nvidia-smi found none (status {done.returncode})")
    from composer.model.providers import runtime

    try:
        available = runtime().get_available_providers()
    except ComposerError as exc:
        raise NoGpu(str(exc)) from None
    missing = [PROVIDERS[p] for p in providers if PROVIDERS[p] not in available]
    if missing:
        raise NoGpu(f"this ONNX Runtime lacks {', '.join(missing)} (it has {', '.join(available)}): "
                    "pip install \".[gpu]\" (onnxruntime-gpu, alone)")
    return "; ".join(names)


def point_job(job: Job, provider: str, batch: int, precision: str, fp16_model: Path | None, cache: Path) -> Job:
    """``job`` on ``provider`` at ``batch`` in ``precision`` (fp16: the converted model, or TensorRT's own)."""
    model = dataclasses.replace(job.model, provider=provider, cache=cache, trt_batches=(1, MAX_BATCH, MAX_BATCH))
    if precision == "fp16":
        assert fp16_model is not None
        model = (dataclasses.replace(model, fp16=True) if provider == "tensorrt"
                 else dataclasses.replace(model, path=fp16_model))
    return dataclasses.replace(job, model=model).with_run(batch=batch)


def measure(job: Job, frames: int) -> tuple[float, float | None, float, str, float, str]:
    """fps, the GPU's bound, the bound, what sets it, efficiency and the provider the model really ran on."""
    from composer.measure.profile import profile_job

    result = profile_job(job, frames)
    data = result.to_json()
    return (data["fps"], data["accelerator_bound_fps"], data["bound_fps"], data["bound_limit"], data["efficiency"],
            data["provider"])


def build_engine(job: Job) -> None:
    """Open and warm one session, so TensorRT builds and caches its engine outside the timed runs."""
    from composer.inputs.plan import open_plan
    from composer.rendering.layout import run_batch, warm_up

    with open_plan(job) as plan:
        model = plan.open_model(1)
        warm_up([model], run_batch(job, model))


def precision_psnr(job: Job, fp16_model: Path, provider: str, frames: int) -> str:
    """The float16 copy against the float32 model, on ``provider``: the PSNR of the pasted region."""
    from composer.measure.precision import compare_models

    spec = dataclasses.replace(job.model, provider=provider)
    result = compare_models(dataclasses.replace(job, model=spec), fp16_model, frames)
    return f"PSNR {result.psnr_db:.1f} dB (worst {result.worst_db:.1f}), max diff {result.max_abs_diff}"


def run_check(args: argparse.Namespace, gpu: str) -> tuple[list[Point], list[str]]:
    """Every point of the grid, and notes (precision checks, what was skipped).

    CUDA's points come first (no engine to build), then TensorRT's; within a provider each model and precision
    in turn, so that time running out drops the last TensorRT points rather than a whole model.
    """
    from composer.model.fp16 import convert_to_fp16

    began, budget = time.monotonic(), 60 * args.minutes
    points, notes = [], []
    jobs = {}
    for name in args.models:
        folder = args.out / name
        job = load_job(make_job(folder, name, args.frames, args.size))
        fp16_model = convert_to_fp16(job.model.path, folder / "model16.onnx") if "fp16" in args.precisions else None
        jobs[name] = job, fp16_model
    if "fp16" in args.precisions and "heavy" in jobs:
        job, fp16_model = jobs["heavy"]
        assert fp16_model is not None
        notes.append(f"heavy float16 copy against float32 on {args.providers[0]}: "
                     f"{precision_psnr(job, fp16_model, args.providers[0], min(args.frames, 25))}")
    engines = args.out / "engines"
    for provider in args.providers:
        for name, (job, fp16_model) in jobs.items():
            for precision in args.precisions:
                out_of_time = time.monotonic() - began > budget
                if provider == "tensorrt" and not out_of_time:  # the engine, built once per model and precision
                    build_engine(point_job(job, provider, MAX_BATCH, precision, fp16_model, engines))
                for batch in args.batches:
                    if time.monotonic() - began > budget:
                        points.append(Point(name, provider, batch, precision, note="skipped: out of time"))
                        continue
                    spec = point_job(job, provider, batch, precision, fp16_model, engines)
                    try:
                        fps, gpu_bound, bound, limit, efficiency, runs_on = measure(spec, args.frames)
                    except ComposerError as exc:
                        points.append(Point(name, provider, batch, precision, note=f"failed: {exc}"[:160]))
                        continue
                    point = Point(name, provider, batch, precision, fps, gpu_bound, bound, limit, efficiency,
                                  runs_on.removesuffix("ExecutionProvider"))
                    points.append(point)
                    print("  ".join(point.cells()), flush=True)
    skipped = sum(p.note.startswith("skipped") for p in points)
    if skipped:
        notes.append(f"{skipped} points skipped: the check stops starting measurements after {args.minutes:g} min")
    notes.append(f"GPU: {gpu}; {time.monotonic() - began:.0f} s in all")
    return points, notes


def markdown(points: list[Point], notes: list[str], args: argparse.Namespace, gpu: str) -> str:
    machine = describe_machine().summary()
    lines = [f"## GPU check: {gpu}", "",
             f"`scripts/gpu-check` on {machine}: the benchmark jobs ({args.frames} frames at "
             f"{args.size[0]}x{args.size[1]}), each point profiled (`composer profile`: the bound is the lower of "
             "the host's CPU bound and the model's own on the GPU; efficiency = fps / bound). TensorRT ran from a "
             "cached engine (one profile, batch 1 to 8); FP16 is `composer fp16`'s model on CUDA and TensorRT's "
             "float16 kernels on TensorRT.", ""]
    lines += markdown_table(HEADER, [p.cells() for p in points], "llrlrrrlrll")
    lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines)


def _list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=Path, help="write the results as section 'gpu-check' of this Markdown file")
    parser.add_argument("--section", default="gpu-check", help="the report section's name")
    parser.add_argument("--provider", default="cuda,tensorrt", help="comma-separated: cuda, tensorrt, cpu")
    parser.add_argument("--models", default="heavy,light", help="comma-separated: heavy, light")
    parser.add_argument("--batches", help="comma-separated batch sizes, at most 8 (default 1,4,8; --quick: 1,2)")
    parser.add_argument("--precisions", default="fp32,fp16", help="comma-separated: fp32, fp16")
    parser.add_argument("--frames", type=int, default=150, help="output frames per point")
    parser.add_argument("--size", type=_size, default=(1280, 720), help="frame size WIDTHxHEIGHT")
    parser.add_argument("--minutes", type=float, default=7.0, help="start no measurement after this many minutes")
    parser.add_argument("--out", type=Path, default=Path(".gpu-check-work"), help="scratch folder (kept)")
    parser.add_argument("--quick", action="store_true", help="a dry run: 6 frames at 320x240, batches 1 and 2")
    args = parser.parse_args(argv)
    args.providers, args.models, args.precisions = _list(args.provider), _list(args.models), _list(args.precisions)
    if args.quick:
        args.frames, args.size = 6, (320, 240)
    args.batches = args.batches or ("1,2" if args.quick else "1,4,8")
    try:
        args.batches = [int(b) for b in _list(args.batches)]
    except ValueError:
        parser.error("--batches takes integers")
    choices = ((args.providers, PROVIDERS, "--provider"), (args.models, ("heavy", "light"), "--models"),
               (args.precisions, ("fp32", "fp16"), "--precisions"))
    for values, known, what in choices:
        if not values or set(values) - set(known):
            parser.error(f"{what}: expected some of {', '.join(known)}")
    if not all(1 <= b <= MAX_BATCH for b in args.batches) or len(args.size) != 2 or args.frames < 1:
        parser.error(f"--batches from 1 to {MAX_BATCH}, --frames at least 1, --size WIDTHxHEIGHT")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        gpu = check_machine(args.providers)
    except NoGpu as exc:
        print(f"gpu-check: {exc}", file=sys.stderr)
        return 2
    print("  ".join(HEADER[:-1]), flush=True)
    try:
        points, notes = run_check(args, gpu)
    except ComposerError as exc:
        print(f"gpu-check: {exc}", file=sys.stderr)
        return 1
    print(text_table([HEADER, *[p.cells() for p in points]], left=4, free_last=True))
    for note in notes:
        print(note)
    if args.report is not None:
        write_section(args.report, args.section, markdown(points, notes, args, gpu))
        print(f"report: {args.report} (section {args.section})")
    return 0 if all(p.fps is not None or p.note.startswith("skipped") for p in points) else 1


if __name__ == "__main__":
    sys.exit(main())
