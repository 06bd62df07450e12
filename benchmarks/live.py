"""Feed feature rows in real time to ``composer live`` on the benchmark jobs and report latency and capacity.

    python -m benchmarks.live --model both --seconds 20 --rate 25 --size 1280x720 --out bench-live \
        --report RESULTS.md

For each benchmark model (``light``: inference cheap, as on a GPU; ``heavy``: the demo's U-Net, which a CPU
cannot run at 25 fps) it writes the benchmark job of :mod:`benchmarks.run` under ``--out``, opens it for a live
run (template in memory, model loaded and timed), then a feeder thread writes the job's feature rows into a pipe
at ``--rate`` rows a second for ``--seconds`` seconds while the stream (MPEG-TS at ``--rate`` fps) is written. It
prints the frames written, rendered, dropped and idle, the latency from a row's arrival to its frame written
(p50, p95, p99, and the median of each stage), the renderer's sustained fps and the streams it serves
(sustained fps / stream fps, seed 003), and with ``--report`` writes the table as a section of a Markdown file.

A model slower than the stream shows drop-newest at work: frames that would be late are dropped, and the
latency stays flat instead of growing with the stream's length.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks.run import MODELS, _size, make_job
from composer.config.job import load_job
from composer.inputs.audio_features import encoded_job
from composer.inputs.plan import output_fps
from composer.inputs.sources import open_template
from composer.live.runner import open_live
from composer.live.stats import LiveStats
from composer.measure.machine import describe_machine
from composer.measure.report import markdown_table, write_section
from composer.measure.report import text_table as aligned_table

HEADER = ("model", "rows", "frames", "rendered", "dropped", "idle", "budget ms", "p50 ms", "p95 ms", "p99 ms",
          "infer p50 ms", "sustained fps", "streams served")


def feed(fd: int, rows: np.ndarray, rate: float, count: int) -> None:
    """Write ``count`` rows (``rows`` over and over) into ``fd``, row ``k`` at ``k / rate`` s, then close it."""
    start = time.perf_counter()
    try:
        for k in range(count):
            time.sleep(max(0.0, start + k / rate - time.perf_counter()))
            os.write(fd, np.ascontiguousarray(rows[k % len(rows)], "<f4").tobytes())
    except OSError:
        pass  # the run stopped reading
    finally:
        os.close(fd)


def measure(job_file: Path, rate: float, seconds: float, output: Path) -> LiveStats:
    """One live run of ``job_file`` fed ``seconds`` of rows at ``rate``; its stats."""
    job = load_job(job_file)
    with open_template(job.template.source) as source:
        fps = output_fps(job, source)
    job = encoded_job(job, fps)  # the rows the stream is fed: the job's audio, encoded at the job's own rate
    job = dataclasses.replace(job, output=dataclasses.replace(job.output, fps=Fraction(str(rate))))
    assert job.features is not None and job.features.path is not None
    rows = np.load(job.features.path, mmap_mode="r")
    count = max(1, round(rate * seconds))
    with open_live(job) as live:
        read, write = os.pipe()
        feeder = threading.Thread(target=feed, args=(write, rows, rate, count), daemon=True)
        feeder.start()
        try:
            return live.run(read, str(output))
        finally:
            feeder.join(timeout=60)
            os.close(read)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def row(model: str, stats: LiveStats) -> tuple[str, ...]:
    s = stats.summary()
    latency = s["latency_ms"]
    served = s["streams_served"]
    sustained = s["fps_sustained"]
    return (model, str(s["rows"]), str(s["frames"]), str(s["rendered"]), str(s["dropped"]), str(s["idle"]),
            _ms(s["latency_budget_ms"]), _ms(latency["p50"]), _ms(latency["p95"]), _ms(latency["p99"]),
            _ms(latency["stages"]["infer"]["p50"]), "-" if sustained is None else f"{sustained:.1f}",
            "-" if served is None else f"{served:.2f}")


def markdown(rows: list[tuple[str, ...]], command: str, machine: str) -> str:
    lines = [
        "## Live: rows fed in real time",
        "",
        f"`{command}` on {machine}. Latency: a row's arrival to its frame written in the MPEG-TS stream; "
        "dropped: rows whose frame would have been late (their place repeats the previous frame); streams "
        "served: the renderer's sustained fps over the stream's fps.",
        "",
        *markdown_table(HEADER, rows, "l" + "r" * (len(HEADER) - 1)),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live", description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["heavy", "light", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of rows fed (default 20)")
    parser.add_argument("--rate", type=float, default=25.0, help="rows a second, and the stream's fps (default 25)")
    parser.add_argument("--size", type=_size, default=(1280, 720), help="template size WxH (default 1280x720)")
    parser.add_argument("--out", type=Path, default=Path("bench-live"), help="folder for the jobs and streams")
    parser.add_argument("--report", type=Path, help="write the table as a section of this Markdown file")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or not 1 <= args.rate <= 240:
        parser.error("--seconds must be positive and --rate 1 to 240")
    models = ["light", "heavy"] if args.model == "both" else [args.model]
    machine = describe_machine().summary()
    print(f"machine: {machine}")
    rows = []
    for model in models:
        folder = args.out / model
        frames = max(1, round(args.rate * args.seconds))
        job_file = make_job(folder, model, frames, args.size)
        print(f"{model} model: {MODELS[model]}; {args.seconds:g} s of rows at {args.rate:g}/s, "
              f"{args.size[0]}x{args.size[1]}", flush=True)
        stats = measure(job_file, args.rate, args.seconds, folder / "live.ts")
        stats.write(folder / "stats.json")
        rows.append(row(model, stats))
    print(aligned_table([HEADER, *rows], left=1))
    if args.report is not None:
        command = (f"python -m benchmarks.live --model {args.model} --seconds {args.seconds:g} --rate {args.rate:g} "
                   f"--size {args.size[0]}x{args.size[1]}")
        write_section(args.report, "live", markdown(rows, command, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
