"""``composer sweep``: the processor's speed over a grid of renderers, batch sizes, composite workers and model
lanes and threads.

The pipeline's points take every batch x workers x model layout; the segment renderer's take batch x model
layout (it has no composite workers: each lane does all of a frame's work).

Every point of the grid renders the same frames (the job cut to ``frames`` output frames, written to a
scratch folder) ``repeats`` times. Runs go round the whole grid once per repeat rather than repeating a
point back to back, so a slow minute of a shared machine spreads over the points instead of sinking one, and
each round starts one point further along (:func:`composer.measure.children.rotated`). Every run is a fresh process,
as a user's render is: in one process a run finds the memory the runs before it left, and its peak RSS
includes their leftovers. Each point reports its median fps with the range, its median p95 latency and its
highest peak RSS.

The best of many medians is flattered by the noise that picked it: on a shared machine one point's runs can
spread 47-63 fps, and the highest of 12 such medians reads high. With ``confirm`` runs, when the job's own
settings are not the best point, the sweep ends by rendering the two in turns (best, own; own, best; ...) and
reads the own settings' share of the best from those pairs, each pair taken in the same minute.

The report section's heat map needs matplotlib (``pip install matplotlib``).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from composer.config.defaults import model_layout, segment_layout
from composer.config.job import Job
from composer.errors import JobError, OutputError
from composer.measure.children import render_fresh, rotated
from composer.measure.machine import Machine, describe_machine
from composer.measure.profile import DEFAULT_FRAMES
from composer.measure.report import markdown_table, text_table
from composer.measure.timeline import have_matplotlib
from composer.measure.trial import scratch_folder, trial_job
from composer.rendering.layout import RenderLayout, default_layout
from composer.runtime.trace import Tracer

__all__ = ["Confirmation", "Point", "PointResult", "Sweep", "Trial", "draw_heatmap", "run_sweep"]

_MIB = 2**20


MODES = ("segments", "pipeline")


@dataclass(frozen=True)
class Point:
    """One setting of the grid: the renderer, batch, composite workers (the pipeline's; 0 for the segment
    renderer) and the model's lanes x intra-op threads per lane."""

    batch: int
    workers: int
    lanes: int = 1
    threads: int = 1
    mode: str = "pipeline"

    def model_label(self) -> str:
        return f"{self.lanes} x {self.threads}"

    def workers_label(self) -> str:
        """The workers column: the pipeline's composite workers, or "segments" for the segment renderer."""
        return "segments" if self.mode == "segments" else str(self.workers)

    def label(self) -> str:
        renderer = "segments" if self.mode == "segments" else f"{self.workers} workers"
        return f"batch {self.batch}, {renderer}, model {self.model_label()} (lanes x threads)"

    def to_json(self) -> dict[str, int | str]:
        return {"mode": self.mode, "batch": self.batch, "workers": self.workers, "lanes": self.lanes,
                "threads": self.threads}


@dataclass(frozen=True)
class Trial:
    """One render of one point."""

    fps: float
    p95_ms: float
    peak_rss: int  # bytes
    frames: int = 0  # output frames rendered


@dataclass(frozen=True)
class PointResult:
    """A point and its repeated renders."""

    point: Point
    trials: tuple[Trial, ...]

    @property
    def fps(self) -> float:
        """Median fps over the repeats."""
        return statistics.median(t.fps for t in self.trials)

    @property
    def fps_range(self) -> tuple[float, float]:
        return min(t.fps for t in self.trials), max(t.fps for t in self.trials)

    @property
    def p95_ms(self) -> float:
        """Median over the repeats of each render's p95 frame latency."""
        return statistics.median(t.p95_ms for t in self.trials)

    @property
    def peak_rss(self) -> int:
        """The highest peak RSS of the repeats, bytes."""
        return max(t.peak_rss for t in self.trials)


@dataclass(frozen=True)
class Confirmation:
    """The best point and the job's own settings rendered in turns after the grid, pair by pair."""

    best: PointResult
    default: PointResult

    @property
    def share(self) -> float:
        """The own settings' fps over the best's, the median over the pairs (each pair ran back to back)."""
        return statistics.median(d.fps / b.fps for b, d in zip(self.best.trials, self.default.trials))

    def line(self) -> str:
        runs = len(self.best.trials)
        each = f"{runs} run{'s' if runs > 1 else ''} each"
        return (f"Rendered in turns with the best point after the grid ({each}): {self.default.fps:.1f} "
                f"against {self.best.fps:.1f} fps (medians); by pairs, {self.share:.0%} of the best "
                f"({self.share - 1:+.1%}).")


@dataclass(frozen=True)
class Sweep:
    """A finished sweep."""

    job: Path
    frames: int
    repeats: int
    results: tuple[PointResult, ...]
    machine: Machine
    default: Point | None = None  # what the job's own settings (auto where unset) resolve to
    confirmation: Confirmation | None = None

    def default_line(self) -> str:
        """How the job's own settings fare against the best point: in the grid, when it holds them, and in the
        runs that confirm it."""
        if self.default is None:
            return ""
        found = next((r for r in self.results if r.point == self.default), None)
        if found is self.best:
            return f"The job's own settings ({self.default.label()}) are the best point."
        if found is None:
            line = f"The job's own settings ({self.default.label()}) are not in the grid."
        else:
            share = found.fps / self.best.fps
            line = (f"The job's own settings ({self.default.label()}): {found.fps:.1f} fps in the grid, {share:.0%} "
                    f"of the best ({share - 1:+.1%}).")
        return line if self.confirmation is None else f"{line} {self.confirmation.line()}"

    @property
    def best(self) -> PointResult:
        """The point with the highest median fps."""
        return _best(self.results)

    def _rows(self) -> list[tuple[str, ...]]:
        best = self.best
        rows: list[tuple[str, ...]] = []
        for r in self.results:
            low, high = r.fps_range
            mark = " *" if r is best else ""
            rows.append((str(r.point.batch), r.point.workers_label(), r.point.model_label(), f"{r.fps:.1f}{mark}",
                         f"{low:.1f}-{high:.1f}", f"{r.p95_ms:.0f}", f"{r.peak_rss / _MIB:.0f}"))
        return rows

    _HEADER = ("batch", "workers", "model lanes x threads", "fps median", "fps min-max", "p95 latency ms",
               "peak RSS MiB")

    def text(self) -> str:
        """A plain-text table and the best point."""
        lines = [f"{self.job}: {self.frames} output frames per run, {self.repeats} runs per point",
                 text_table([self._HEADER, *self._rows()])]
        lines.append(f"best: {self.best.point.label()}: {self.best.fps:.1f} fps (median of {self.repeats})")
        if self.default is not None:
            lines.append(self.default_line())
        return "\n".join(lines)

    def markdown(self, picture: str | None = None) -> str:
        """The report section's body: table, best point, heat map (when drawn) and the machine."""
        lines = [f"Sweep of `{self.job.parent.name}/{self.job.name}`: {self.frames} output frames per run, "
                 f"{self.repeats} runs per point (rounds over the grid, each starting one point further along), on the "
                 "machine below. Every run is a fresh process; peak RSS is its high-water mark, the loaded "
                 "model included.", ""]
        lines += markdown_table(self._HEADER, self._rows(), "rrrrrrr")
        lines += ["", f"**Best:** {self.best.point.label()}: {self.best.fps:.1f} fps (median of {self.repeats}; "
                  "marked * above)."]
        if self.default is not None:
            lines += ["", self.default_line()]
        if picture is not None:
            lines += ["", f"![median fps over the grid]({picture})"]
        lines += ["", self.machine.markdown()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "job": str(self.job), "frames": self.frames, "repeats": self.repeats,
            "points": [
                {**r.point.to_json(), "fps": r.fps, "fps_min": r.fps_range[0], "fps_max": r.fps_range[1],
                 "p95_ms": r.p95_ms, "peak_rss_mb": r.peak_rss / _MIB, "runs": [t.fps for t in r.trials]}
                for r in self.results
            ],
            "best": {**self.best.point.to_json(), "fps": self.best.fps},
            "default": None if self.default is None else self.default.to_json(),
            "confirmation": None if self.confirmation is None else {
                "best_runs": [t.fps for t in self.confirmation.best.trials],
                "default_runs": [t.fps for t in self.confirmation.default.trials],
                "share": self.confirmation.share},
            "machine": self.machine.to_json(),
        }


def run_sweep(job: Job, batches: Sequence[int], workers: Sequence[int], threads: Sequence[int | None] = (None,),
              repeats: int = 3, frames: int | None = DEFAULT_FRAMES, progress: bool = False,
              lanes: Sequence[int | None] = (None,), confirm: int = 0, modes: Sequence[str] = ("pipeline",),
              say: Callable[[str], None] | None = None) -> Sweep:
    """Render ``job`` at every point of modes x batches x workers x lanes x threads, ``repeats`` times each.

    Args:
        job: the job; its outputs are not touched (renders go to a scratch folder).
        batches: frames per model call.
        workers: composite threads.
        threads: model intra-op threads per lane (None: the job's own setting, else the default).
        lanes: model sessions side by side (None: the job's own setting, else the default).
        repeats: renders per point.
        frames: output frames per render (all of the job's when None or without features).
        progress: show a progress bar over the runs.
        confirm: runs each of the best point and the job's own settings, in turns after the grid, when they
            differ.
        modes: the renderers (:data:`MODES`); the segment renderer's points leave ``workers`` out.
        say: told, in one line before the first render, how many renders the sweep will run.

    Raises:
        JobError: an empty grid or a value below 1.
        ComposerError: the job's inputs are bad or a render fails.
    """
    from tqdm import tqdm

    if not batches or not workers or not threads or not lanes or not modes or repeats < 1 or confirm < 0:
        raise JobError("sweep: every axis needs at least one value, and repeats at least 1")
    if unknown := [m for m in modes if m not in MODES]:
        raise JobError(f"sweep: unknown renderer {unknown[0]!r}; choose from {', '.join(MODES)}")
    given = [*batches, *workers, *(t for t in threads if t is not None), *(n for n in lanes if n is not None)]
    if min(given) < 1:
        raise JobError("sweep: batch, workers, lanes and threads must be at least 1")
    own = default_layout(job)
    default = default_point(own)
    points: list[Point] = []
    if "segments" in modes:
        layouts = [segment_layout(job.with_run(lanes=n, threads=t)) for n, t in itertools.product(lanes, threads)]
        points += [Point(b, 0, m.lanes, m.threads, "segments") for b, m in itertools.product(batches, layouts)]
    if "pipeline" in modes:
        pipeline = own.model if not own.segments else default_layout(job.with_run(mode="pipeline")).model
        layouts = [pipeline if n is None and t is None else
                   model_layout(job.with_run(lanes=n, threads=t), pipeline.accelerated)
                   for n, t in itertools.product(lanes, threads)]
        points += [Point(b, w, m.lanes, m.threads) for b, w, m in itertools.product(batches, workers, layouts)]
    points = list(dict.fromkeys(points))
    if say is not None:
        confirming = f", then {2 * confirm} more to confirm the best point" if confirm else ""
        say(f"sweep: {len(points)} points x {repeats} repeats = {len(points) * repeats} renders of "
            f"{frames or 'all'} frames{confirming}; a smaller grid: --modes, --batch, --workers, --repeats, -n")
    trials: dict[Point, list[Trial]] = {p: [] for p in points}
    confirmation = None
    with scratch_folder(job) as folder, tqdm(total=len(points) * repeats, desc="sweep", unit="run",
                                              disable=not progress, dynamic_ncols=True) as bar:
        trial = trial_job(job, frames, folder / "run")

        def render(point: Point) -> Trial:
            bar.set_postfix_str(f"b{point.batch} w{point.workers} m{point.model_label()}")
            result = render_point(trial, point)
            bar.update(1)
            return result

        for round_ in range(repeats):
            for point in rotated(points, round_):
                trials[point].append(render(point))
        results = tuple(PointResult(p, tuple(trials[p])) for p in points)
        best = _best(results).point
        if confirm and default != best:
            bar.total = (bar.total or 0) + 2 * confirm
            paired: dict[Point, list[Trial]] = {best: [], default: []}
            for k in range(confirm):
                for point in (best, default) if k % 2 == 0 else (default, best):  # each pair starts with the other
                    paired[point].append(render(point))
            confirmation = Confirmation(*(PointResult(p, tuple(paired[p])) for p in (best, default)))
    return Sweep(job.path, results[0].trials[0].frames, repeats, results, describe_machine(), default, confirmation)


def _best(results: Sequence[PointResult]) -> PointResult:
    """The point with the highest median fps (the first of equals)."""
    return max(results, key=lambda r: r.fps)


def render_point(trial: Job, point: Point) -> Trial:
    """Render ``trial`` at ``point`` in a fresh process."""
    run = trial.with_run(mode=point.mode, batch=point.batch, workers=point.workers or None, lanes=point.lanes,
                         threads=point.threads)
    tracer = Tracer()
    stats = render_fresh(run, tracer, name=f"sweep run ({point.label()})")
    (p95,) = tracer.percentiles_ms("latency", [95])
    return Trial(stats.fps, p95, stats.peak_rss, stats.frames)


def default_point(layout: RenderLayout) -> Point:
    """The point a render with ``layout`` (:func:`composer.rendering.layout.default_layout`) runs at."""
    return Point(layout.batch, layout.workers, layout.model.lanes, layout.model.threads, layout.renderer)


def draw_heatmap(sweep: Sweep, path: Path) -> Path | None:
    """Draw the median fps over batch x workers (one panel per model layout, lanes x threads) as a PNG.

    Returns ``path``, or None when matplotlib is missing.

    Raises:
        OutputError: the picture cannot be written.
    """
    if not have_matplotlib():
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    batches = sorted({r.point.batch for r in sweep.results})
    columns = sorted({(r.point.mode != "segments", r.point.workers) for r in sweep.results})  # segments first
    workers = [("segments" if mode_key == (False, 0) else str(mode_key[1])) for mode_key in columns]
    threads = list(dict.fromkeys(r.point.model_label() for r in sweep.results))
    fps = {(r.point.batch, r.point.workers_label(), r.point.model_label()): r.fps for r in sweep.results}
    top = max(fps.values())
    figure = Figure(figsize=(1.2 + 1.3 * len(workers) * len(threads) + 0.8, 1.4 + 0.6 * len(batches)), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(threads), squeeze=False)[0]
    image = None
    for ax, t in zip(axes, threads):
        grid = np.array([[fps.get((b, w, t), np.nan) for w in workers] for b in batches])
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=top, aspect="auto")
        for (row, col), value in np.ndenumerate(grid):
            if not np.isnan(value):
                ax.text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=9,
                        color="black" if value > 0.6 * top else "white")
        ax.set_xticks(range(len(workers)), workers)
        ax.set_yticks(range(len(batches)), [str(b) for b in batches])
        ax.set_xlabel("composite workers (or the segment renderer)")
        ax.set_ylabel("batch")
        if len(threads) > 1:
            ax.set_title(f"model lanes x threads: {t}", fontsize=10)
    if image is not None:
        figure.colorbar(image, ax=list(axes), label="median fps")
    threads_note = "" if len(threads) > 1 else f", model lanes x threads {threads[0]}"
    figure.suptitle(f"{Path(sweep.job).parent.name}/{Path(sweep.job).name}: median fps over {sweep.repeats} runs "
                    f"of {sweep.frames} frames{threads_note}", fontsize=10,
                    y=1.12 if len(threads) > 1 else 1.04)  # above the panels' own titles
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", bbox_inches="tight")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the heat map: {exc.strerror or exc}") from exc
    return path
