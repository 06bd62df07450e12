"""Render one job with composer and with every design the seeds describe, each run in a fresh process, and compare.

    python -m benchmarks.run --model both --frames 200 --size 1280x720 --out bench --report RESULTS.md

For each benchmark model (``heavy``: the demo's U-Net, inference dominates on a CPU; ``light``: one
convolution, cheap as on a GPU, so the CPU stages dominate) it writes the demo job (a 100-frame template
reused ping-pong over ``--frames`` output frames) under ``--out``, loads it once, then:

1. checks: every design renders the frames into memory and each is compared with the reference loop's;
2. times: each design renders the frames to jpg files (``cv2.imwrite``, the job's quality), the designs
   taking turns for ``--repeats`` rounds, so a slow spell of a shared machine does not sink one of them, and
   each round starting one design further along than the one before, so that no design always goes first
   and a position's luck is not read as a design's speed;
   every run in a fresh child process that loads the job's inputs and model before its clock starts, as a
   user's render would: in one shared process a design found memory as the designs before it had left it
   (the seeds' lists of frames came back from the allocator's heap already faulted in, composer's cache
   never did), and that ranked the designs as much as their work did;
3. prints fps (median and range), the ratio of each to composer's, peak RSS and the check's verdict, and
   with ``--report`` writes the table as a section of a Markdown file.

Ratios, not absolute fps, are what compare across machines and runs. Exit status 1 if a design's frames
differ from the reference by more than the one level of rounding a batched convolution may cause.
"""

from __future__ import annotations

import argparse
import gc
import queue
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.designs import DESIGNS, Inputs, label, load_inputs
from composer.config.checks import parse_frame_size
from composer.config.job import Job, load_job
from composer.measure.children import ChildFailed, failure, rotated, run_child
from composer.measure.machine import describe_machine
from composer.measure.report import markdown_table, write_section
from composer.measure.report import text_table as aligned_table
from composer.model.zoo import build_light
from composer.rendering.layout import RenderLayout
from composer.rendering.observer import PeakMemory
from composer.tools.demo import make_demo_assets

MODELS = {
    "heavy": "the demo's U-Net (inference dominates on a CPU)",
    "light": "one 3x3 convolution (inference cheap, as on a GPU: the CPU stages dominate)",
}
_MIB = 2**20


GRAIN = 2.0  # levels of sensor-like noise: ~7 Mbit/s at 720p, a phone recording's rate; decode ~6 ms CPU a frame


def make_job(folder: Path, model: str, frames: int, size: tuple[int, int], template: int | None = None) -> Path:
    """Write the benchmark job for ``model`` into ``folder`` (``template`` frames, else the demo's); returns its
    job file."""
    job_file = make_demo_assets(folder, frames=frames, size=size, template_frames=template, grain=GRAIN)
    if model == "light":
        build_light(folder / "model.onnx", window=320, in_channels=6, feature_shape=(32, 16, 16))
    return job_file


def benchmark_job(job_file: Path) -> Job:
    """The job as the benchmarks render it: jpg frames only (no video: no design but composer writes one)."""
    return load_job(job_file, {"output": {"format": "jpg", "video": ""}})


# --- saving and checking ----------------------------------------------------------------------------------


class JpgSaver:
    """Saves each frame as ``NNNNNN.jpg`` with ``cv2.imwrite``, as seed 000 does."""

    def __init__(self, folder: Path, quality: int) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder = folder
        self._params = [cv2.IMWRITE_JPEG_QUALITY, quality]

    def __call__(self, index: int, frame: np.ndarray) -> None:
        if not cv2.imwrite(str(self.folder / f"{index:06d}.jpg"), frame, self._params):
            raise OSError(f"{self.folder}: cannot write frame {index}")


@dataclass(frozen=True)
class Verdict:
    """How a design's frames compare with the reference loop's."""

    frames: int
    missing: int
    differing: int
    max_diff: int

    @property
    def ok(self) -> bool:
        """Every frame present and within one level (batched convolutions may round differently)."""
        return self.missing == 0 and self.max_diff <= 1

    def text(self) -> str:
        if self.missing:
            return f"FAILED: {self.missing} of {self.frames} frames missing"
        if self.differing == 0:
            return "identical"
        if self.max_diff <= 1:
            return f"within 1 level ({self.differing} of {self.frames} frames differ)"
        return f"DIFFERENT: {self.differing} frames, up to {self.max_diff} levels"


class Checker:
    """A ``save`` that compares each frame with the expected one, from any thread."""

    def __init__(self, expected: dict[int, np.ndarray]) -> None:
        self.expected = expected
        self._seen: set[int] = set()
        self._differing = 0
        self._max = 0
        self._lock = threading.Lock()

    def __call__(self, index: int, frame: np.ndarray) -> None:
        want = self.expected[index]
        diff = 0
        if want.shape != frame.shape:
            diff = 255
        elif not np.array_equal(want, frame):
            diff = int(np.abs(want.astype(np.int16) - frame.astype(np.int16)).max())
        with self._lock:
            self._seen.add(index)
            if diff:
                self._differing += 1
                self._max = max(self._max, diff)

    def verdict(self) -> Verdict:
        return Verdict(len(self.expected), len(set(self.expected) - self._seen), self._differing, self._max)


def check(inputs: Inputs, names: Sequence[str]) -> dict[str, Verdict]:
    """Render with every design into memory and compare each with the reference loop."""
    expected: dict[int, np.ndarray] = {}

    def keep(index: int, frame: np.ndarray) -> None:
        expected[index] = frame.copy()

    DESIGNS["reference"](inputs, keep)
    verdicts = {}
    for name in names:
        if name == "reference":
            continue
        checker = Checker(expected)
        DESIGNS[name](inputs, checker)
        verdicts[name] = checker.verdict()
    return verdicts


# --- timing -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """One design's timed runs."""

    name: str
    seconds: tuple[float, ...]
    peak_rss: int
    frames: int

    @property
    def fps(self) -> float:
        return self.frames / statistics.median(self.seconds)

    @property
    def fps_range(self) -> tuple[float, float]:
        return self.frames / max(self.seconds), self.frames / min(self.seconds)


def _timed_run(job_file: str, name: str, folder: str, answers: queue.Queue) -> None:
    """A child's body: load the job's inputs as the parent did, then time one render of design ``name``."""
    try:
        inputs = load_inputs(benchmark_job(Path(job_file)))
        save = JpgSaver(Path(folder), inputs.job.output.quality)
        gc.collect()
        memory = PeakMemory()
        began = time.perf_counter()
        DESIGNS[name](inputs, save)
        answers.put((time.perf_counter() - began, memory.peak))
    except BaseException as exc:
        answers.put(failure(exc))


def time_designs(job_file: Path, names: Sequence[str], count: int, folder: Path, repeats: int,
                 progress: bool = True) -> dict[str, Timing]:
    """Time each design ``repeats`` times in rounds (:func:`rotated` orders each), each run in a fresh process
    saving jpg frames under ``folder / name``; ``count`` is the job's number of output frames.

    Raises:
        ChildFailed: a run failed (the message is its error) or its process died.
    """
    seconds: dict[str, list[float]] = {n: [] for n in names}
    peaks: dict[str, int] = dict.fromkeys(names, 0)
    for round_ in range(repeats):
        for name in rotated(names, round_):
            took, peak = run_child(_timed_run, (str(job_file), name, str(folder / name)), f"benchmark-{name}")
            seconds[name].append(took)
            peaks[name] = max(peaks[name], peak)
            if progress:
                print(f"  round {round_ + 1}/{repeats} {name:18s} {count / took:7.1f} fps", file=sys.stderr)
    return {n: Timing(n, tuple(seconds[n]), peaks[n], count) for n in names}


# --- report -----------------------------------------------------------------------------------------------


def table(timings: dict[str, Timing], verdicts: dict[str, Verdict],
          layout: RenderLayout | None = None) -> list[tuple[str, ...]]:
    """Rows: design, fps, range, fps / composer's, composer's speed-up, peak RSS, frames check (``layout``:
    composer's, as :func:`benchmarks.designs.label` names it)."""
    base = timings["composer"].fps if "composer" in timings else None
    rows = []
    for name, t in timings.items():
        low, high = t.fps_range
        ratio = f"{t.fps / base:.2f}" if base else "-"
        speedup = f"{base / t.fps:.2f}x" if base else "-"
        verdict = "the reference" if name == "reference" else (
            verdicts[name].text() if name in verdicts else "not checked")
        rows.append((label(name, layout), f"{t.fps:.1f}", f"{low:.1f}-{high:.1f}", ratio, speedup,
                     f"{t.peak_rss / _MIB:.0f}", verdict))
    return rows


_HEADER = ("design", "fps", "fps min-max", "fps / composer's", "composer faster by", "peak RSS MiB", "frames")


def text_table(rows: list[tuple[str, ...]]) -> str:
    return aligned_table([_HEADER, *rows], left=1, free_last=True)


def markdown(model: str, rows: list[tuple[str, ...]], inputs: Inputs, size: tuple[int, int], repeats: int,
             title: str = "Side by side", command: str = "") -> str:
    frames = inputs.count
    lines = [f"## {title}: {model} model", "",
             f"{MODELS[model][0].upper() + MODELS[model][1:]}. {frames} output frames at {size[0]}x{size[1]} "
             f"(a {inputs.template_frames}-frame template played ping-pong), saved as jpg; every run in a fresh "
             "process that loads the job and its model before the clock starts; fps is the median of "
             f"{repeats} interleaved runs. The frames column compares each design's frames, in memory, with "
             "the reference loop's. Peak RSS is the run's process at its highest, the loaded model included.",
             "", *markdown_table(_HEADER, rows, "lrrrrrl")]
    lines += ["", f"Machine: {describe_machine().summary()}.",
              "Regenerate: `python -m benchmarks.run --model " + model + f" --frames {frames} "
              f"--size {size[0]}x{size[1]} --repeats {repeats}{command} --out DIR --report RESULTS.md`."]
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_frame_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["heavy", "light", "both"], default="both")
    parser.add_argument("--frames", type=int, default=200, help="output frames per run (default 200)")
    parser.add_argument("--size", type=_size, default=(1280, 720), help="template size WxH (default 1280x720)")
    parser.add_argument("--out", type=Path, default=Path("bench"), help="folder for the jobs and frames")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per design (default 1)")
    parser.add_argument("--designs", default=",".join(DESIGNS),
                        help=f"comma-separated subset of {', '.join(DESIGNS)}")
    parser.add_argument("--no-check", action="store_true", help="skip comparing the frames")
    parser.add_argument("--template", type=int, help="template frames (default: the demo's, min(frames, 100))")
    parser.add_argument("--report", type=Path, help="write a section per model into this Markdown file")
    parser.add_argument("--section", default="compare", help="report sections are named SECTION-MODEL")
    parser.add_argument("--title", default="Side by side", help="report headings read 'TITLE: MODEL model'")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.designs.split(",") if n.strip()]
    unknown = [n for n in names if n not in DESIGNS]
    if unknown or args.frames < 1 or args.repeats < 1 or (args.template is not None and args.template < 1):
        parser.error(f"unknown designs {unknown}" if unknown else
                     "--frames, --repeats and --template must be at least 1")
    models = ["heavy", "light"] if args.model == "both" else [args.model]
    failed = False
    print(f"machine: {describe_machine().summary()}")
    for model in models:
        folder = args.out / model
        job = benchmark_job(make_job(folder, model, args.frames, args.size, args.template))
        inputs = load_inputs(job)
        print(f"\n{model} model: {MODELS[model]}; {inputs.count} frames at {args.size[0]}x{args.size[1]}")
        verdicts = {} if args.no_check else check(inputs, names)
        gc.collect()
        try:
            timings = time_designs(job.path, names, inputs.count, folder / "frames", args.repeats)
        except ChildFailed as exc:
            print(f"benchmarks.run: {model} model: {exc}", file=sys.stderr)
            return 1
        rows = table(timings, verdicts, inputs.layout)
        print(text_table(rows))
        failed |= any(not v.ok for v in verdicts.values())
        if args.report is not None:
            command = "" if args.template is None else f" --template {args.template}"
            if args.designs != parser.get_default("designs"):
                command += f" --designs {','.join(names)}"
            write_section(args.report, f"{args.section}-{model}",
                          markdown(model, rows, inputs, args.size, args.repeats, args.title, command))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
