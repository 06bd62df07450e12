"""Peak memory against template length: composer's peak RSS must not grow with the job.

    python -m benchmarks.memory --frames 2000,20000 --size 1280x720 --budget 1GB --out bench-memory --report RESULTS.md

For each template length it makes (or reuses) a synthetic job under ``--out/LENGTH``: an H.264 template of
that many frames, a moving 200x200 rectangle per frame, one feature row per output frame (as many as the
template has, so the schedule visits each template frame once), the light or heavy benchmark model and a
job file with ``[run] memory_budget``. Each job renders in a fresh ``python -m composer run`` process whose
peak RSS is the largest of: its resident set (and its children's) polled every 50 ms, the kernel's
high-water mark (``VmHWM``) last read while it ran, and the ``ru_maxrss`` the kernel reports when it exits.

A row is ``ok`` when the peak is at most the budget + 300 MB; the peaks are ``flat`` when they differ by less
than 10% + 50 MB. Exit status 1 if a row is over, or a render fails or writes the wrong number of frames.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import psutil

from composer.config.checks import parse_frame_size, parse_size
from composer.inputs.sources import open_template
from composer.measure.machine import describe_machine
from composer.measure.report import markdown_table, text_table, write_section
from composer.model.zoo import build_light, build_unet

MARGIN = 300 * 10**6  # bytes the peak may exceed the budget by
_FPS = 25
_SCROLL = 256  # period, in pixels, of the template's scrolling texture
_MIB = 2**20
_JOB = """\
# benchmarks.memory: a {frames}-frame synthetic template, rendered to a video only.
[template]
video = "template.mp4"
rects = "rects.json"
[features]
path = "{features}"
window = 8
[model]
path = "{model}"
crop = 328
border = 4
inputs = ["crop", "masked"]
mask = [0, 160, 320, 160]
color = "bgr"
[output]
video = "out/result.mp4"
fps = {fps}
[run]
memory_budget = "{budget}"
"""


# --- inputs -----------------------------------------------------------------------------------------------


def rects_for(count: int, size: tuple[int, int]) -> list[list[int]]:
    """A square of ``min(200, height // 2)`` per frame, drifting slowly around the centre, inside the frame."""
    width, height = size
    side = min(200, height // 2, width // 2)
    reach_x, reach_y = min(0.1 * width, (width - side) / 2), min(0.1 * height, (height - side) / 2)
    rects = []
    for t in range(count):
        x1 = round((width - side) / 2 + reach_x * math.sin(2 * math.pi * t / 250))
        y1 = round((height - side) / 2 + reach_y * math.sin(2 * math.pi * t / 170))
        rects.append([x1, y1, x1 + side, y1 + side])
    return rects


def _texture(height: int, width: int, rng: np.random.Generator, low: int, high: int) -> np.ndarray:
    """Smooth random values (upscaled coarse noise), one plane of ``width + _SCROLL`` columns to scroll over."""
    coarse = rng.integers(low, high, (height // 16 + 2, (width + _SCROLL) // 16 + 2), dtype=np.uint8)
    return cv2.resize(coarse, (width + _SCROLL, height), interpolation=cv2.INTER_CUBIC)


def write_template(path: Path, rects: list[list[int]], size: tuple[int, int], seed: int = 0) -> None:
    """Encodes a texture scrolling 2 px a frame, with a bright box in each rectangle (H.264, yuv420p, 25 fps)."""
    width, height = size
    rng = np.random.default_rng(seed)
    luma = _texture(height, width, rng, 16, 236)
    cb, cr = (_texture(height // 2, width // 2, rng, 100, 156) for _ in range(2))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "ultrafast"}
        stream.codec_context.thread_count = 0
        for t, (x1, y1, x2, y2) in enumerate(rects):
            shift = (2 * t) % _SCROLL
            y = luma[:, shift : shift + width].copy()
            q = (x2 - x1) // 4
            y[y1 + q : y2 - q, x1 + q : x2 - q] = 200 + t % 35
            planes = (y, cb[:, shift // 2 : shift // 2 + width // 2], cr[:, shift // 2 : shift // 2 + width // 2])
            yuv = np.concatenate([p.ravel() for p in planes]).reshape(height * 3 // 2, width)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")))
            if (t + 1) % 1000 == 0 or t + 1 == len(rects):
                print(f"  template {path.parent.name}: {t + 1}/{len(rects)} frames", file=sys.stderr)
        container.mux(stream.encode())


def _write_once(path: Path, write: Callable[[Path], object]) -> None:
    """Runs ``write`` on a temporary name and renames it to ``path``, so a half-written file is never used."""
    if not path.exists():
        part = path.with_name(f"{path.stem}.part{path.suffix}")
        write(part)
        os.replace(part, path)


def make_inputs(folder: Path, frames: int, size: tuple[int, int], budget: str, model: str = "light",
                render: int | None = None, seed: int = 0) -> Path:
    """Writes (or reuses) the job of a ``frames``-frame template in ``folder``; returns its job file.

    The template and rectangles are reused when ``inputs.json`` (written last) records the same length and
    size; the model and the features (``render`` rows, all frames when None) when their files exist.
    """
    folder.mkdir(parents=True, exist_ok=True)
    marker, made = folder / "inputs.json", {"frames": frames, "size": list(size)}
    if not (marker.exists() and json.loads(marker.read_text()) == made
            and (folder / "template.mp4").exists() and (folder / "rects.json").exists()):
        marker.unlink(missing_ok=True)
        (folder / "template.mp4").unlink(missing_ok=True)
        rects = rects_for(frames, size)
        (folder / "rects.json").write_text(json.dumps(rects) + "\n")
        _write_once(folder / "template.mp4", lambda p: write_template(p, rects, size, seed))
        marker.write_text(json.dumps(made) + "\n")
    rows = frames if render is None else min(render, frames)
    features = folder / f"features-{rows}.npy"
    _write_once(features, lambda p: np.save(p, np.random.default_rng(seed).standard_normal((rows, 1024),
                                                                                           np.float32)))
    build = build_light if model == "light" else build_unet
    weights = folder / f"model-{model}.onnx"
    _write_once(weights, lambda p: build(p, window=320, in_channels=6, feature_shape=(32, 16, 16), seed=seed))
    job = folder / "job.toml"
    text = _JOB.format(frames=frames, features=features.name, model=weights.name, fps=_FPS, budget=budget)
    if not job.exists() or job.read_text() != text:
        job.write_text(text)
    return job


# --- measuring --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One render in a child process: its exit status, wall time and peaks (bytes) by each measure."""

    returncode: int
    seconds: float
    sampled: int  # largest RSS of the process and its children, polled
    hwm: int  # VmHWM, last read while it ran
    maxrss: int  # ru_maxrss from wait4
    stderr: str

    @property
    def peak(self) -> int:
        return max(self.sampled, self.hwm, self.maxrss)


def _tree_rss(pid: int) -> int:
    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    except psutil.Error:
        return 0


def _high_water_mark(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(command: Sequence[str], poll: float = 0.05) -> Run:
    """Runs ``command`` and follows its memory until it exits (reaped with ``wait4`` for its ``ru_maxrss``)."""
    with tempfile.TemporaryFile() as errors:
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        sampled = hwm = 0
        try:
            while True:
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                sampled = max(sampled, _tree_rss(child.pid))
                hwm = _high_water_mark(child.pid) or hwm
                time.sleep(poll)
        except BaseException:
            child.kill()
            child.wait()
            raise
        seconds = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        text = errors.read().decode(errors="replace")
    return Run(child.returncode, seconds, sampled, hwm, usage.ru_maxrss * 1024, text)


def render_job(job: Path) -> Run:
    """Renders ``job`` with ``python -m composer run JOB -q`` in a fresh process."""
    return measure([sys.executable, "-m", "composer", "run", str(job), "-q"])


def video_frames(path: Path) -> int:
    """Frames of a video, counted as composer counts a template's (by demuxing, no decoding)."""
    with open_template(path) as source:
        return source.count


# --- report -----------------------------------------------------------------------------------------------

_HEADER = ("template frames", "output frames", "budget", "peak RSS MiB", "peak - budget MiB", "fps", "verdict")


def row(template: int, frames: int, budget: str, run: Run) -> tuple[str, ...]:
    over = run.peak - parse_size(budget)
    return (str(template), str(frames), budget, f"{run.peak / _MIB:.0f}", f"{over / _MIB:+.0f}",
            f"{frames / run.seconds:.1f}", "ok" if run.peak <= parse_size(budget) + MARGIN else "OVER")


def flatness(peaks: Sequence[int]) -> str:
    """``flat`` when the peaks differ by less than 10% of the smallest + 50 MB, else ``grows``."""
    spread = max(peaks) - min(peaks)
    return f"{'flat' if spread < 0.1 * min(peaks) + 50 * 10**6 else 'grows'} (spread {spread / _MIB:.0f} MiB)"


def markdown(rows: Sequence[tuple[str, ...]], flat: str, args: argparse.Namespace) -> str:
    width, height = args.size
    lines = ["## Memory: peak RSS against template length", "",
             f"Synthetic {width}x{height} H.264 templates, the {args.model} model, one output frame per template "
             f"frame, rendered to a video only by `composer run` in a fresh process with `[run] memory_budget = "
             f"\"{args.budget}\"`. Peak RSS is the largest of the polled RSS, the kernel's VmHWM and ru_maxrss; "
             "`ok` means at most the budget + 300 MB. fps includes start-up.",
             "", *markdown_table(_HEADER, rows, "rrlrrrl")]
    render = f" --render {args.render}" if args.render else ""
    lines += ["", f"Peak against length: {flat}.", "", f"Machine: {describe_machine().summary()}.",
              f"Regenerate: `python -m benchmarks.memory --frames {','.join(map(str, args.frames))} "
              f"--size {width}x{height} --budget {args.budget} --model {args.model}{render} --out DIR "
              "--report RESULTS.md`."]
    return "\n".join(lines)


def _lengths(text: str) -> list[int]:
    lengths = [int(v) for v in text.split(",") if v.strip()]
    if not lengths or min(lengths) < 1:
        raise ValueError(text)
    return lengths


def _argument(parse: Callable[[str], Any], hint: str, keep_text: bool = False) -> Callable[[str], Any]:
    """An argparse ``type`` that parses with ``parse`` (keeping the text if asked) or says ``hint``."""

    def check(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {hint}, got {text!r}") from None
        return text if keep_text else value

    return check


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=_argument(_lengths, "frame counts such as 2000,20000"),
                        default=[2000, 20000], help="comma-separated template lengths (default 2000,20000)")
    parser.add_argument("--size", type=_argument(parse_frame_size, "an even WIDTHxHEIGHT of at least 64x64"),
                        default=(1280, 720), help="template size WxH (default 1280x720)")
    parser.add_argument("--budget", type=_argument(parse_size, "a size such as 1GB or 512MiB", keep_text=True),
                        default="1GB", help="[run] memory_budget of the jobs (default 1GB)")
    parser.add_argument("--model", choices=["light", "heavy"], default="light")
    parser.add_argument("--render", type=int, help="render only the first N output frames (default: all)")
    parser.add_argument("--out", type=Path, default=Path("bench-memory"), help="folder for the jobs (reused)")
    parser.add_argument("--report", type=Path, help="write the table as a section of this Markdown file")
    args = parser.parse_args(argv)
    if args.render is not None and args.render < 1:
        parser.error("--render must be at least 1")
    print(f"machine: {describe_machine().summary()}")
    rows, peaks = [], []
    for frames in args.frames:
        job = make_inputs(args.out / str(frames), frames, args.size, args.budget, args.model, args.render)
        output = min(frames, args.render) if args.render else frames
        print(f"rendering {output} of {frames} frames: {job}", file=sys.stderr)
        run = render_job(job)
        if run.returncode != 0:
            print(run.stderr, file=sys.stderr, end="")
            print(f"render of {job} failed with exit status {run.returncode}", file=sys.stderr)
            return 1
        written = video_frames(job.parent / "out" / "result.mp4")
        if written != output:
            print(f"{job}: expected {output} frames in the video, found {written}", file=sys.stderr)
            return 1
        print(f"  peak {run.peak / _MIB:.0f} MiB (polled {run.sampled / _MIB:.0f}, VmHWM {run.hwm / _MIB:.0f}, "
              f"ru_maxrss {run.maxrss / _MIB:.0f}), {run.seconds:.1f} s", file=sys.stderr)
        rows.append(row(frames, output, args.budget, run))
        peaks.append(run.peak)
    print(text_table([_HEADER, *rows]))
    flat = flatness(peaks) if len(peaks) > 1 else "one length only"
    print(f"peak against length: {flat}")
    if args.report is not None:
        write_section(args.report, "memory", markdown(rows, flat, args))
    return 1 if any(r[-1] != "ok" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
