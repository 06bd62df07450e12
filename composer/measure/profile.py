"""``composer profile``: what each stage costs, the speed those costs allow, and how close the processor gets.

Measuring (docs/design.md section 5):

1. Each stage is measured alone on one thread, and the bound computed from those costs
   (:mod:`composer.measure.stages`).
2. The processor then renders the same frames with the job's settings, and the stages are measured once
   more. The bound comes from each stage's mean over the two measurements, which bracket the render: a
   shared machine's speed drifts by 10% and more within minutes, and a bound measured on one side only
   compared the render with another speed than its own. Both measurements' bounds are reported, and a
   drift of more than :data:`DRIFT` between them is pointed out. The processor's fps over the bound is the
   renderer's efficiency. The renderer's settings are the ones the render itself reports
   (:attr:`composer.RenderStats.layout`).
3. With several rounds, render and measurement alternate (measure, render, measure, render, ... measure).
   Each render is read against the bound of the two measurements on either side of it, and the efficiency
   is the median over the rounds: one render in a slow phase of the machine moves it no more than a
   round's worth.

Outputs go to a scratch folder beside the job's outputs, removed afterwards: profiling never touches a
finished render.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.config import defaults
from composer.config.job import Job
from composer.errors import JobError
from composer.measure.children import render_fresh
from composer.measure.report import markdown_table, text_table
from composer.measure.stages import Bound, StageCost, compute_bound, mean_costs, measure_stages
from composer.measure.trial import scratch_folder, trial_job
from composer.rendering.memory import frame_bytes
from composer.runtime.trace import Tracer

__all__ = ["DEFAULT_FRAMES", "Memory", "Profile", "RunResult", "profile_job"]

DEFAULT_FRAMES = 250
DRIFT = 0.05  # the bounds before and after the render differ by more: the report says the machine drifted
_MIB = 2**20


@dataclass(frozen=True)
class RunResult:
    """The processor's render of the profiled frames."""

    frames: int
    seconds: float
    peak_rss: int  # bytes
    latency_ms: tuple[float, ...]  # p50, p95, p99 from batching to written, per frame

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else math.inf


@dataclass(frozen=True)
class Memory:
    """What the template cache costs for this job (bytes), in composer's layout and in seed 001's."""

    width: int
    height: int
    crop: int
    window: int
    chunk: int  # template frames per chunk, as the preloader chose it
    template_frames: int

    @property
    def per_frame(self) -> int:
        """Bytes of one cached template frame: the full frame and its resized crop."""
        return frame_bytes(self.width, self.height, self.crop)

    @property
    def seed001_per_frame(self) -> int:
        """Seed 001's cache per frame: the full frame, the crop and two uint8 copies of the model window."""
        return self.per_frame + 2 * 3 * self.window * self.window

    @property
    def slots(self) -> int:
        """Chunks alive at once: one when the template fits, else two (the next decodes meanwhile)."""
        return 1 if self.chunk >= self.template_frames else 2

    @property
    def cache(self) -> int:
        """Bytes of the whole cache."""
        return self.slots * self.chunk * self.per_frame


@dataclass(frozen=True)
class Profile:
    """Everything ``composer profile`` reports.

    Attributes:
        job: the job file.
        frames: output frames profiled (and rendered).
        decoded: distinct template frames those frames need.
        size: template width and height.
        provider: the ONNX Runtime provider the model ran on.
        settings: batch, workers, threads and chunk of the processor's run.
        measured: each measurement's stage costs, in pipeline order: the one before the first render, then
            one after each render.
        runs: the processor's renders of the same frames, one per round.
        memory: the template cache's cost.
        cores: the usable cores the bound counts.
    """

    job: Path
    frames: int
    decoded: int
    size: tuple[int, int]
    provider: str
    settings: dict[str, int]
    measured: tuple[tuple[StageCost, ...], ...]
    runs: tuple[RunResult, ...]
    memory: Memory
    cores: int

    _HEADER = ("stage", "wall ms/frame", "CPU ms/frame", "CPU share", "max fps", "work")

    @property
    def stages(self) -> tuple[StageCost, ...]:
        """Each stage's cost: the mean over every measurement."""
        return mean_costs(self.measured)

    @property
    def bound(self) -> Bound:
        """The bound the mean costs set."""
        return compute_bound(self.stages, self.cores)

    @property
    def around(self) -> tuple[Bound, ...]:
        """Each measurement's own bound, in order."""
        return tuple(compute_bound(stages, self.cores) for stages in self.measured)

    @property
    def run(self) -> RunResult:
        """The first render (the traced one)."""
        return self.runs[0]

    @property
    def efficiencies(self) -> tuple[float, ...]:
        """Each render's fps over the bound of the measurements on either side of it."""
        return tuple(run.fps / compute_bound(mean_costs(self.measured[k:k + 2]), self.cores).fps
                     for k, run in enumerate(self.runs))

    @property
    def efficiency(self) -> float:
        """Measured fps over the bound (the median over the rounds); 1 means the processor uses the machine
        fully."""
        return statistics.median(self.efficiencies)

    @property
    def fps(self) -> float:
        """The renders' median fps."""
        return statistics.median(run.fps for run in self.runs)

    @property
    def peak_rss(self) -> int:
        """The highest peak RSS of the renders, in bytes."""
        return max(run.peak_rss for run in self.runs)

    @property
    def drift(self) -> float:
        """How far apart the measurements' bounds are, as a fraction of the first."""
        fps = [bound.fps for bound in self.around]
        return (max(fps) - min(fps)) / fps[0] if fps[0] > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The profile as one JSON object (``stages``, ``bound_fps``, ``fps``, ``efficiency``, ...)."""
        p50, p95, p99 = self.run.latency_ms
        return {
            "job": str(self.job),
            "frames": self.frames,
            "run_frames": self.run.frames,
            "template_frames_decoded": self.decoded,
            "size": list(self.size),
            "provider": self.provider,
            "settings": dict(self.settings),
            "stages": {
                s.name: {"wall_ms": s.wall_ms, "cpu_ms": s.cpu_ms, "max_fps": s.max_fps,
                         "accelerator": s.accelerator, "work": s.work}
                for s in self.stages
            },
            "cores": self.bound.cores,
            "cpu_ms_per_frame": self.bound.cpu_ms,
            "cpu_bound_fps": self.bound.cpu_fps,
            "accelerator_bound_fps": self.bound.accelerator_fps,
            "bound_fps": self.bound.fps,
            "bound_limit": self.bound.limit,
            "bound_fps_before": self.around[0].fps,
            "bound_fps_after": self.around[-1].fps,
            "bound_fps_measured": [bound.fps for bound in self.around],
            "fps": self.fps,
            "seconds": statistics.median(run.seconds for run in self.runs),
            "efficiency": self.efficiency,
            "rounds": [{"fps": run.fps, "seconds": run.seconds, "efficiency": e, "peak_rss_mb": run.peak_rss / _MIB}
                       for run, e in zip(self.runs, self.efficiencies)],
            "peak_rss_mb": self.peak_rss / _MIB,  # MiB
            "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
            "memory": {
                "bytes_per_cached_frame": self.memory.per_frame,
                "mib_per_100_frames": 100 * self.memory.per_frame / _MIB,
                "chunk": self.memory.chunk,
                "slots": self.memory.slots,
                "cache_mib": self.memory.cache / _MIB,
            },
        }

    # --- text ---------------------------------------------------------------------------------------------

    def _rows(self) -> list[tuple[str, ...]]:
        total_cpu = sum(s.cpu_ms for s in self.stages)
        rows: list[tuple[str, ...]] = []
        for s in self.stages:
            name = s.name + (" (accelerator)" if s.accelerator else "")
            share = f"{100 * s.cpu_ms / total_cpu:.0f}%" if total_cpu > 0 else "-"
            rows.append((name, f"{s.wall_ms:.2f}", f"{s.cpu_ms:.2f}", share, f"{s.max_fps:.1f}", s.work))
        rows.append(("total", f"{sum(s.wall_ms for s in self.stages):.2f}", f"{total_cpu:.2f}", "100%", "", ""))
        return rows

    def _summary_lines(self) -> list[str]:
        b, r, s = self.bound, self.run, self.settings
        lines = [f"CPU bound: {b.cores} cores / {b.cpu_ms:.2f} CPU ms per frame = {b.cpu_fps:.1f} fps"]
        if b.accelerator_fps is not None:
            lines.append(f"accelerator bound: 1 / model time per frame = {b.accelerator_fps:.1f} fps; "
                         f"bound = {b.fps:.1f} fps (set by the {b.limit})")
        rounds = len(self.runs)
        if rounds == 1:
            before, after = self.around
            lines.append(f"stages measured before the render: bound {before.fps:.1f} fps; after it: "
                         f"{after.fps:.1f} fps (the bound above is from their mean costs)")
        else:
            bounds = ", ".join(f"{bound.fps:.1f}" for bound in self.around)
            lines.append(f"stages measured {len(self.around)} times, before the first render and after each: "
                         f"bounds {bounds} fps (the bound above is from their mean costs)")
        if self.drift > DRIFT:
            lines.append(f"the machine's speed drifted by {100 * self.drift:.0f}% during the profile: read the "
                         "efficiency with that margin")
        p50, p95, p99 = r.latency_ms
        video = ""
        if "encoders" in s:
            video = f", video {s['video']}"
        if s.get("mode") == "segments":
            settings = (f"segment renderer (batch {s['batch']}, {s['lanes']} lanes x {s['threads']} threads, "
                        f"each rendering whole segments, chunk {s['chunk']}{video})")
        else:
            settings = (f"pipeline (batch {s['batch']}, {s['workers']} workers, model {s['lanes']} lanes x "
                        f"{s['threads']} threads, chunk {s['chunk']}{video})")
        peak = self.peak_rss / _MIB
        if rounds == 1:
            lines += [
                f"{settings}: {r.frames} frames in {r.seconds:.2f} s = {r.fps:.1f} fps",
                f"efficiency {self.efficiency:.2f} (fps / bound), peak RSS {peak:.0f} MiB, "
                f"latency p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms",
            ]
        else:
            each = ", ".join(f"{run.fps:.1f}" for run in self.runs)
            ratios = ", ".join(f"{e:.2f}" for e in self.efficiencies)
            lines += [
                f"{settings}: {rounds} renders of {r.frames} frames at {each} fps",
                f"efficiency {self.efficiency:.2f}: the median over the rounds of each render's fps over the bound "
                f"of the measurements on either side of it ({ratios})",
                f"peak RSS {peak:.0f} MiB; latency (first render) p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
                f"p99 {p99:.0f} ms",
            ]
        return lines

    def _title(self) -> str:
        provider = self.provider.removesuffix("ExecutionProvider")
        return (f"{self.job.parent.name}/{self.job.name}: {self.frames} output frames "
                f"({self.decoded} template frames), {self.size[0]}x{self.size[1]}, model on {provider}")

    def text(self) -> str:
        """The report as a plain-text table and summary."""
        table = text_table([self._HEADER, *self._rows()], left=1, free_last=True)
        return "\n".join([self._title(), table, *self._summary_lines()])

    def markdown(self) -> str:
        """The report as Markdown: the stage table, the bound and the run, and the cache's memory."""
        lines = [f"`{self._title()}`", "", *markdown_table(self._HEADER, self._rows(), "lrrrrl")]
        lines += [""] + [f"- {line}" for line in self._summary_lines()]
        lines += ["", self.memory_markdown()]
        return "\n".join(lines)

    def memory_markdown(self) -> str:
        """The template cache's memory, per cached frame and per 100 frames, beside seed 001's layout."""
        m = self.memory
        full, crop, window = 3 * m.width * m.height, 3 * m.crop * m.crop, 3 * m.window * m.window

        def row(what: str, per: int, composer: bool = True) -> str:
            mark = "" if composer else " (seed 001 only)"
            return f"| {what}{mark} | {per:,} | {100 * per / _MIB:.1f} |"

        lines = ["| cached per template frame | bytes | MiB per 100 frames |", "| --- | ---: | ---: |",
                 row(f"full frame {m.width}x{m.height} BGR", full),
                 row(f"crop {m.crop}x{m.crop} BGR", crop),
                 row(f"model window {m.window}x{m.window} uint8", window, composer=False),
                 row(f"model input {m.window}x{m.window} uint8", window, composer=False),
                 f"| **composer** | **{m.per_frame:,}** | **{100 * m.per_frame / _MIB:.1f}** |",
                 f"| seed 001 | {m.seed001_per_frame:,} | {100 * m.seed001_per_frame / _MIB:.1f} |",
                 "",
                 f"The preloader chose a chunk of {m.chunk} template frames "
                 f"({'the whole template' if m.slots == 1 else f'of {m.template_frames}, two slots'}): "
                 f"{m.cache / _MIB:.0f} MiB of cache."]
        return "\n".join(lines)


def profile_job(job: Job, frames: int | None = DEFAULT_FRAMES, tracer: Tracer | None = None,
                rounds: int = 1) -> Profile:
    """Profile ``job`` over its first ``frames`` output frames (all of them when None), in ``rounds`` rounds.

    Args:
        job: the job; its outputs are not touched (everything is written to a scratch folder).
        frames: output frames to measure and render. The processor can render a cut job only when the
            job has ``[features]`` (they set its length); without them it renders the whole job, while the
            stages are still measured over the first ``frames`` (costs are per frame either way).
        tracer: records the processor's spans during its first render (a fresh one when None).
        rounds: renders, each followed by a measurement of the stages (module doc, step 3).

    Raises:
        JobError: ``frames`` or ``rounds`` is not positive.
        ComposerError: the job's inputs are bad or a stage fails.
    """
    if frames is not None and frames < 1:
        raise JobError(f"profile: frames must be at least 1, got {frames}")
    if rounds < 1:
        raise JobError(f"profile: rounds must be at least 1, got {rounds}")
    tracer = tracer if tracer is not None else Tracer()
    cores = defaults.usable_cores()
    runs = []
    layout = None
    with scratch_folder(job) as folder:
        trial = trial_job(job, frames, folder / "run")
        first = measure_stages(trial, folder / "measure-0", frames)
        measured = [first.stages]
        for k in range(rounds):
            # In a fresh process, as a user's render: after the measurement in this one it found the memory the
            # measurement had left, and its peak RSS counted the measurement's leftovers.
            spans = tracer if k == 0 else Tracer()
            stats = render_fresh(trial, spans, name="profile render")
            runs.append(RunResult(stats.frames, stats.seconds, stats.peak_rss,
                                  spans.percentiles_ms("latency", (50, 95, 99))))
            layout = layout or stats.layout
            measured.append(measure_stages(trial, folder / f"measure-{k + 1}", frames).stages)
    assert layout is not None  # a render reports the layout it ran with
    width, height = first.size
    spec = job.model
    memory = Memory(width, height, spec.crop, spec.window, layout.chunk, first.template)
    return Profile(job=job.path, frames=first.frames, decoded=first.decoded, size=first.size, provider=first.provider,
                   settings=layout.settings(job.output.video is not None), measured=tuple(measured),
                   runs=tuple(runs), memory=memory, cores=cores)
