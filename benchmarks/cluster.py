"""One job on one machine, then on a local Dask cluster of one-thread workers on the same cores.

    python -m benchmarks.cluster --model both --frames 1000 --workers 2 --out bench-cluster \\
        --report RESULTS.md

For each benchmark model (``heavy``, ``light``: see ``benchmarks/run.py``) it writes the demo job (images and an
mp4 with audio), renders it with ``composer.render`` (the single-machine renderer, every core), then starts a
``LocalCluster`` of ``--workers`` worker processes with one thread each (the workers are warmed up: composer
imported, as a long-lived cluster has it) and renders the job again on it with
:func:`composer.cluster.render.render_on_cluster`. It checks that both wrote the same bytes, and reports:

- both fps and their ratio (the goal: the cluster at 0.90 or more of the single machine on the same cores);
- a task's fixed costs, from the tasks' own clocks (median over the tasks): start (the job's inputs opened and
  the model session ready; a worker's first task loads the model, later ones reuse it), the template's seek
  and decode, the encoder's start and the segment's write (closed and renamed); and its frames' cost;
- the join: from the last segment's arrival to the finished mp4 (segments and audio copied into one file);
- from those, a projection of the fps with 4, 16 and 64 workers on machines of this speed: the segments
  shared out in waves, each task its fixed cost plus its frames, then the join. A projection, not a
  measurement: it assumes one core per worker, storage that keeps up and a scheduler that costs nothing.

``--tiny`` renders a small job quickly (for the tests), not for figures. Exit status 1 if the bytes differ.
"""

from __future__ import annotations

import argparse
import filecmp
import math
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.run import MODELS, make_job
from composer.cluster.connect import LOCAL_CONFIG
from composer.cluster.render import render_on_cluster
from composer.cluster.task import SegmentResult
from composer.config.job import Job, load_job
from composer.measure.machine import describe_machine
from composer.measure.report import markdown_table, text_table, write_section
from composer.output.resume import SEGMENT_FRAMES
from composer.rendering.render import render

if TYPE_CHECKING:
    from distributed import Client

PROJECTED = (4, 16, 64)


@dataclass(frozen=True)
class Costs:
    """A task's fixed costs and its frames' cost, medians over the tasks (seconds)."""

    start: float
    decode: float
    encoder: float
    write: float
    per_frame: float

    @property
    def fixed(self) -> float:
        return self.start + self.decode + self.encoder + self.write


@dataclass(frozen=True)
class Outcome:
    """One model's figures."""

    model: str
    frames: int
    workers: int
    single_fps: float
    cluster_fps: float
    costs: Costs
    join_seconds: float
    overhead: float  # seconds of the cluster run that are neither tasks nor join (submission, scheduling)
    same: bool

    @property
    def ratio(self) -> float:
        return self.cluster_fps / self.single_fps

    def projected_fps(self, workers: int) -> float:
        """The fps ``workers`` one-core workers would reach (a projection, see the module's docstring)."""
        segments = math.ceil(self.frames / SEGMENT_FRAMES)
        waves = math.ceil(segments / workers)
        task = self.costs.fixed + min(SEGMENT_FRAMES, self.frames) * self.costs.per_frame
        return self.frames / (waves * task + self.join_seconds + self.overhead)


def costs_of(results: Sequence[SegmentResult]) -> Costs:
    def median(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    return Costs(start=median([r.times.start for r in results]),
                 decode=median([r.times.decode for r in results]),
                 encoder=median([r.times.encoder for r in results]),
                 write=median([r.times.write for r in results]),
                 per_frame=median([r.times.render / max(1, r.stop - r.first) for r in results]))


class _LastFrame:
    """An observer that remembers when the last frame came in."""

    def __init__(self) -> None:
        self.at = time.perf_counter()

    def started(self, total: int) -> None:
        pass

    def frame_done(self, index: int) -> None:
        self.at = time.perf_counter()

    def finished(self) -> None:
        pass


def _load() -> None:
    import composer.cluster.task  # noqa: F401


def _warm(client: Client) -> None:
    """Import what a task needs on every worker, as a long-lived cluster has it."""
    client.run(_load)


def _same(a: Job, b: Job) -> bool:
    differ = _difference(a, b)
    if differ is not None:
        print(f"the outputs differ: {differ}", file=sys.stderr)
    return differ is None


def _difference(a: Job, b: Job) -> str | None:
    """The first output file the two runs wrote differently (or only one of them wrote), or None."""
    assert a.output.video is not None and b.output.video is not None
    if not filecmp.cmp(a.output.video, b.output.video, shallow=False):
        return f"{a.output.video.name} and {b.output.video.name}"
    if a.output.frames is None or b.output.frames is None:
        return None
    names, others = (sorted(p.name for p in f.iterdir()) for f in (a.output.frames, b.output.frames))
    if names != others:
        return f"the frames folders hold {sorted(set(names) ^ set(others))[:5]} on one side only"
    return next((n for n in names if not filecmp.cmp(a.output.frames / n, b.output.frames / n, shallow=False)),
                None)


def measure(model: str, frames: int, size: tuple[int, int], workers: int, folder: Path,
            template: int | None = None) -> Outcome:
    """Render the model's job on this machine, then on a local cluster; the figures."""
    import dask
    from distributed import Client, LocalCluster

    job_file = make_job(folder, model, frames, size, template)
    single = load_job(job_file, {"output": {"frames": str(folder / "single"), "video": str(folder / "single.mp4")}})
    on_cluster = load_job(job_file, {"output": {"frames": str(folder / "cluster"),
                                                "video": str(folder / "cluster.mp4")}})
    alone = render(single)
    with dask.config.set(LOCAL_CONFIG), LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit=0,
            scheduler_kwargs={"dashboard": False}) as cluster, Client(cluster) as client:
        _warm(client)
        results: list[SegmentResult] = []
        last = _LastFrame()
        stats = render_on_cluster(on_cluster, cluster.scheduler_address, last, results=results)
        ended = time.perf_counter()
    costs = costs_of(results)
    join = max(0.0, ended - last.at)
    waves = math.ceil(len(results) / workers)
    overhead = max(0.0, stats.seconds - join - waves * (costs.fixed + SEGMENT_FRAMES * costs.per_frame))
    return Outcome(model, frames, workers, alone.fps, stats.fps, costs, join, overhead, _same(single, on_cluster))


def rows(outcome: Outcome) -> list[tuple[str, ...]]:
    c = outcome.costs
    return [("figure", "value"),
            ("single machine", f"{outcome.single_fps:.1f} fps"),
            (f"local cluster, {outcome.workers} workers x 1 thread", f"{outcome.cluster_fps:.1f} fps"),
            ("ratio (goal >= 0.90)", f"{outcome.ratio:.2f}"),
            ("same bytes (images and mp4)", "yes" if outcome.same else "NO"),
            ("task start (inputs, model session)", f"{1000 * c.start:.0f} ms"),
            ("task template seek + decode", f"{1000 * c.decode:.0f} ms"),
            ("task encoder start", f"{1000 * c.encoder:.1f} ms"),
            ("task segment write", f"{1000 * c.write:.1f} ms"),
            ("task fixed cost in all", f"{1000 * c.fixed:.0f} ms"),
            ("frame cost in a task", f"{1000 * c.per_frame:.1f} ms"),
            ("join (last segment to mp4)", f"{1000 * outcome.join_seconds:.0f} ms, "
                                           f"{outcome.frames / max(outcome.join_seconds, 1e-9):.0f} frames/s"),
            ("other (submission, scheduling)", f"{1000 * outcome.overhead:.0f} ms")]


def projection(outcome: Outcome) -> list[tuple[str, ...]]:
    segments = math.ceil(outcome.frames / SEGMENT_FRAMES)
    table = [("workers (projection)", "segments a worker", "projected fps", "x single machine")]
    for workers in PROJECTED:
        fps = outcome.projected_fps(workers)
        table.append((str(workers), str(math.ceil(segments / workers)), f"{fps:.0f}",
                      f"{fps / outcome.single_fps:.1f}"))
    return table


def markdown(outcome: Outcome, size: tuple[int, int], command: str) -> str:
    figures, projected = rows(outcome), projection(outcome)
    lines = [f"## Cluster: {outcome.model} model", "",
             f"{MODELS[outcome.model]}; {outcome.frames} frames at {size[0]}x{size[1]}, images and mp4 with audio, "
             f"on {describe_machine().summary()}.", "",
             *markdown_table(figures[0], figures[1:], "lr"), "",
             "**Projection** (not measured): the fps with more one-core workers of this speed, from the task costs "
             "above (segments in waves, each task its fixed cost plus its frames, then the join).", "",
             *markdown_table(projected[0], projected[1:], "rrrr"), "",
             f"Command: `{command}`", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["heavy", "light", "both"], default="both")
    parser.add_argument("--frames", type=int, default=1000, help="output frames (default 1000: 10 segments)")
    parser.add_argument("--size", default="1280x720", help="template size WxH (default 1280x720)")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes, one thread each")
    parser.add_argument("--out", type=Path, default=Path("bench-cluster"), help="folder for the jobs and outputs")
    parser.add_argument("--report", type=Path, help="write a section per model into this Markdown file")
    parser.add_argument("--tiny", action="store_true", help="a small quick job (tests), not for figures")
    args = parser.parse_args(argv)
    width, _, height = args.size.partition("x")
    size = (int(width), int(height))
    frames, template = args.frames, None
    if args.tiny:
        frames, size, template = 2 * SEGMENT_FRAMES + 30, (64, 64), 10
    if frames < 1 or args.workers < 1:
        parser.error("--frames and --workers must be at least 1")
    models = ["heavy", "light"] if args.model == "both" else [args.model]
    print(f"machine: {describe_machine().summary()}")
    failed = False
    for model in models:
        folder = args.out / model
        shutil.rmtree(folder, ignore_errors=True)
        outcome = measure(model, frames, size, args.workers, folder, template)
        print(f"\n{model} model: {MODELS[model]}; {frames} frames at {size[0]}x{size[1]}")
        print(text_table(rows(outcome), left=1))
        print("\nprojection (not measured):")
        print(text_table(projection(outcome)))
        failed |= not outcome.same
        if args.report is not None:
            command = (f"python -m benchmarks.cluster --model {model} --frames {frames} --size {size[0]}x{size[1]} "
                       f"--workers {args.workers}")
            write_section(args.report, f"cluster-{model}", markdown(outcome, size, command))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
