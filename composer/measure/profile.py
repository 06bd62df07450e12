"""``composer profile``: what each stage costs, the speed those costs allow, and how close the processor gets.

Measuring (docs/design.md section 5):

1. Each stage runs alone, one frame at a time, on the caller's thread, on the job's own inputs: decode,
   prepare (crop and resize, then stack the model input), infer, composite, and write (image encode + save
   and video encode, separately when the job writes both). Its wall time and its CPU time
   (``time.thread_time``) are summed over the frames. Every library is held to one thread meanwhile (OpenCV,
   ONNX Runtime's intra-op pool, the FFmpeg decoder, x264), so the CPU time is the stage's cheapest: the
   work itself, with no thread hand-offs and no work left on another thread where the clock misses it.
2. Costs are per output frame. Decoding and cropping happen once per distinct template frame the frames
   need (the cache makes reuse free), so a template reused over many output frames costs a fraction of a
   decode each. Pass-through frames (no rectangle) cost only their write.
3. The bound: ``cores / sum(CPU-seconds per frame)`` frames per second. With an accelerator (the model runs
   on CUDA or TensorRT) the model's share is time on the accelerator instead, and the bound is
   ``min(1 / accelerator seconds per frame, cores / sum(CPU-seconds of the CPU stages))``.
4. The processor then renders the same frames with the job's settings, and the stages are measured once
   more. The bound comes from each stage's mean over the two measurements, which bracket the render: a
   shared machine's speed drifts by 10% and more within minutes, and a bound measured on one side only
   compared the render with another speed than its own. Both measurements' bounds are reported, and a
   drift of more than :data:`DRIFT` between them is pointed out. The processor's fps over the bound is the
   pipeline's efficiency.
5. With several rounds, render and measurement alternate (measure, render, measure, render, ... measure).
   Each render is read against the bound of the two measurements on either side of it, and the efficiency
   is the median over the rounds: one render in a slow phase of the machine moves it no more than a
   round's worth.

Outputs go to a scratch folder beside the job's outputs, removed afterwards: profiling never touches a
finished render.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from composer.config.job import Job
from composer.errors import JobError
from composer.inputs.features import feature_window, load_features
from composer.inputs.plan import (
    encoder_layout,
    open_plan,
    renders_segments,
    run_batch,
    segment_encoders,
    segment_layout,
    usable_cores,
)
from composer.inputs.sources import open_template
from composer.measure.children import render_fresh
from composer.measure.report import markdown_table, text_table
from composer.model.session import Model
from composer.output.writers import ImageFolderSink, VideoSink
from composer.rendering.composite import composite
from composer.rendering.preload import frame_bytes
from composer.rendering.prepare import crop_region, fill_image, image_channels
from composer.runtime.threads import one_opencv_thread
from composer.runtime.trace import Tracer

__all__ = ["DEFAULT_FRAMES", "Bound", "Measurement", "Memory", "Profile", "RunResult", "StageCost", "compute_bound",
           "mean_costs", "measure_stages", "profile_job", "scratch_folder", "trial_job"]

DEFAULT_FRAMES = 250
DRIFT = 0.05  # the bounds before and after the render differ by more: the report says the machine drifted
_MIB = 2**20


# --- results ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageCost:
    """One stage's cost per output frame, measured alone on one thread.

    Attributes:
        name: decode, prepare, infer, composite, write_image or write_video.
        wall_ms: wall milliseconds per output frame.
        cpu_ms: CPU milliseconds per output frame.
        work: what was measured, in words (e.g. "100 template frames decoded").
        accelerator: the stage ran on an accelerator; its wall time is accelerator time.
    """

    name: str
    wall_ms: float
    cpu_ms: float
    work: str = ""
    accelerator: bool = False

    @property
    def max_fps(self) -> float:
        """Frames per second this stage alone allows on one thread (as in seed 000's table)."""
        return 1000.0 / self.wall_ms if self.wall_ms > 0 else math.inf


@dataclass(frozen=True)
class Bound:
    """The speed the measured costs allow on this machine.

    Attributes:
        cores: usable cores.
        cpu_ms: CPU milliseconds per frame of the stages that run on the CPU.
        cpu_fps: ``cores * 1000 / cpu_ms``.
        accelerator_fps: ``1000 / accelerator ms per frame``, or None without an accelerator.
    """

    cores: int
    cpu_ms: float
    cpu_fps: float
    accelerator_fps: float | None = None

    @property
    def fps(self) -> float:
        """The bound: the CPU bound, or the lower of it and the accelerator's."""
        if self.accelerator_fps is None:
            return self.cpu_fps
        return min(self.cpu_fps, self.accelerator_fps)

    @property
    def limit(self) -> str:
        """What sets the bound: ``"cpu"`` or ``"accelerator"``."""
        return "accelerator" if self.accelerator_fps is not None and self.accelerator_fps < self.cpu_fps else "cpu"


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
        rows = []
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


# --- the scratch job --------------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_folder(job: Job) -> Iterator[Path]:
    """A temporary folder beside the job's outputs (same disk, so writes cost what they will), removed after."""
    target = job.output.frames or job.output.video
    parent = target.parent if target is not None else Path(tempfile.gettempdir())
    try:
        parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".composer-measure-", dir=parent))
    except OSError:
        folder = Path(tempfile.mkdtemp(prefix="composer-measure-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def trial_job(job: Job, frames: int | None, folder: Path) -> Job:
    """The job cut to its first ``frames`` output frames, writing its outputs under ``folder``.

    The cut needs a ``[features]`` section (the features set the number of output frames): it writes the
    first rows to ``folder``. Without one, the job keeps all its output frames.
    """
    output = dataclasses.replace(
        job.output,
        frames=folder / "frames" if job.output.frames is not None else None,
        video=folder / "video.mp4" if job.output.video is not None else None,
    )
    features = job.features
    if features is not None and frames is not None:
        rows = load_features(features.path)
        if frames < len(rows):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "features.npy"
            np.save(path, np.asarray(rows[:frames]), allow_pickle=False)
            features = dataclasses.replace(features, path=path)
    return dataclasses.replace(job, output=output, features=features)


# --- measuring --------------------------------------------------------------------------------------------


class _Clock:
    """Sums wall and CPU time (this thread's) over the blocks it times."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.calls = 0

    def __enter__(self) -> _Clock:
        self._wall, self._cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cpu += time.thread_time() - self._cpu
        self.wall += time.perf_counter() - self._wall
        self.calls += 1


@dataclass(frozen=True)
class Measurement:
    """What :func:`measure_stages` found: the stage costs and the facts of the job they depend on (``memory``
    and ``settings``, the processor's for this job, only where it was asked to describe the run)."""

    frames: int
    decoded: int
    size: tuple[int, int]
    provider: str
    stages: tuple[StageCost, ...]
    memory: Memory | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0  # the measured work's wall time end to end: decoding, every stage, closing the outputs


def _cost(name: str, wall: float, cpu: float, frames: int, work: str, accelerator: bool = False) -> StageCost:
    return StageCost(name, 1000 * wall / frames, 1000 * cpu / frames, work, accelerator)


def measure_stages(job: Job, scratch: Path, limit: int | None = None, describe: bool = True) -> Measurement:
    """Measure every stage alone on this thread over the job's first ``limit`` output frames (all if None).

    See the module doc for how. Images and video are written under ``scratch``; the template frames those
    output frames need are held in memory meanwhile. With ``describe``, the measurement also says how the
    processor would run the job (its settings and cache), which times the model once more where the default
    layout depends on its cost; a caller that wants the costs alone leaves that out.

    Raises:
        ComposerError: the job's inputs are bad.
    """
    from composer.rendering.pipeline import Settings

    with one_opencv_thread(), open_plan(job) as plan:
        spec = job.model
        n = plan.count if limit is None else min(limit, plan.count)
        order = plan.schedule[:n]
        width, height = plan.source.width, plan.source.height
        needed = np.unique(order)
        lo, hi = int(needed[0]), int(needed[-1]) + 1

        # Decode the template frames the job needs (sequentially, as the preloader does), and crop them.
        frames = np.empty((hi - lo, height, width, 3), np.uint8)
        crops = np.empty((hi - lo, spec.crop, spec.crop, 3), np.uint8)
        decode, crop = _Clock(), _Clock()
        began = time.perf_counter()
        with open_template(job.template.source, threads=1) as source:
            decoded = source.frames(lo, hi)
            for k in range(hi - lo):
                with decode:
                    frames[k] = next(decoded)
            decoded.close()
        for t in needed:
            rect = plan.rects.get(int(t))
            if rect is not None:
                with crop:
                    crop_region(frames[t - lo], rect, spec, out=crops[t - lo])
        seconds = time.perf_counter() - began  # and below, the loop's: not the model's loading and first call
        per_decode = (decode.wall / decode.calls, decode.cpu / decode.calls)

        model = Model(spec, feature_row_shape=tuple(plan.features.shape[1:]) if plan.features is not None else None,
                      window=job.features.window if job.features is not None else 1, threads=1)
        accelerated = model.accelerated
        batch = run_batch(job, model)
        images = np.zeros((batch, image_channels(spec), spec.window, spec.window), np.float32)
        features = None
        if model.inputs.feature_shape is not None:
            features = np.zeros((batch, *model.inputs.feature_shape), np.float32)
        window = job.features.window if job.features is not None else 0
        model.run(images, features)  # the first call allocates; not a cost of the steady state

        stack, infer, comp, image_clock, video_clock = _Clock(), _Clock(), _Clock(), _Clock(), _Clock()
        out = np.empty((height, width, 3), np.uint8)
        output = job.output
        images_sink = None
        if output.frames is not None:
            images_sink = ImageFolderSink(scratch / "frames", output.format, output.quality)
        video_sink = None
        if output.video is not None:
            video_sink = VideoSink(scratch / "video.mp4", plan.fps, width, height, audio=output.audio,
                                   crf=output.crf, preset=output.preset, threads=1)
        began = time.perf_counter()
        try:
            pending: list[tuple[int, int, tuple[int, int, int, int] | None]] = []  # (frame, template, rect)
            count = 0

            def finish(predictions: np.ndarray | None) -> None:
                row = 0
                for i, t, rect in pending:
                    frame = frames[t - lo]
                    if rect is not None:
                        assert predictions is not None
                        with comp:
                            frame = composite(frame, crops[t - lo], predictions[row], rect, spec,
                                              job.composite, out=out)
                        row += 1
                    if images_sink is not None:
                        with image_clock:
                            images_sink.write(i, frame)
                    if video_sink is not None:
                        with video_clock:
                            video_sink.write(frame)

            for i in range(n):
                t = int(order[i])
                rect = plan.rects.get(t)
                if rect is not None:
                    with stack:
                        fill_image(crops[t - lo], spec, images[count])
                        if features is not None and plan.features is not None:
                            features[count] = feature_window(plan.features, i, window).reshape(features.shape[1:])
                    count += 1
                pending.append((i, t, rect))
                if count == batch or i == n - 1:
                    predictions = None
                    if count:
                        with infer:
                            predictions = model.run(images[:count], None if features is None else features[:count])
                    finish(predictions)
                    pending, count = [], 0
            if video_sink is not None:
                with video_clock:  # the encoder's delayed frames and the file's end are part of the cost
                    video_sink.close()
                video_sink = None
        finally:
            if video_sink is not None:
                video_sink.abort()
        seconds += time.perf_counter() - began

        modelled = int(sum(plan.rects.get(int(t)) is not None for t in order))
        share = len(needed) / n
        stages = [
            StageCost("decode", 1000 * per_decode[0] * share, 1000 * per_decode[1] * share,
                      f"{len(needed)} template frames decoded once each"),
            _cost("prepare", crop.wall + stack.wall, crop.cpu + stack.cpu, n,
                  f"{crop.calls} crops (cached per template frame) + {stack.calls} model inputs"),
            _cost("infer", infer.wall, infer.cpu, n,
                  f"{infer.calls} calls of batch <= {batch} for {modelled} frames", accelerated),
            _cost("composite", comp.wall, comp.cpu, n, f"{comp.calls} frames"),
        ]
        if output.frames is not None:
            stages.append(_cost("write_image", image_clock.wall, image_clock.cpu, n,
                                f"{image_clock.calls} {output.format} encoded and saved"))
        if output.video is not None:
            stages.append(_cost("write_video", video_clock.wall, video_clock.cpu, n,
                                f"{n} frames, libx264 {output.preset} crf {output.crf}"))
        if not describe:
            return Measurement(n, len(needed), (width, height), model.provider, tuple(stages), seconds=seconds)
        settings = Settings.resolve(job, plan, model)
        memory = Memory(width, height, spec.crop, spec.window, settings.chunk, plan.source.count)
        segments = renders_segments(job, settings.chunk, plan.source.count)  # as a render chooses
        if segments:
            (lanes, threads), workers = segment_layout(job), 0
        else:
            layout = plan.choose_layout(probe=model)[0]  # the model measured above, on one thread
            (lanes, threads), workers = (layout.lanes, layout.threads), settings.workers
        run = {"mode": "segments" if segments else "pipeline", "batch": settings.batch, "workers": workers,
               "lanes": lanes, "threads": threads, "chunk": settings.chunk}
        if output.video is not None:
            encoders = segment_encoders(job) if segments else encoder_layout(job)
            run |= {"encoders": encoders.encoders, "encoder_threads": encoders.threads, "video": encoders.text()}
        return Measurement(n, len(needed), (width, height), model.provider, tuple(stages), memory, run, seconds)


def compute_bound(stages: tuple[StageCost, ...], cores: int) -> Bound:
    """The bound of docs/design.md section 5 for ``stages`` on ``cores`` cores."""
    cpu_ms = sum(s.cpu_ms for s in stages if not s.accelerator)
    cpu_fps = cores * 1000 / cpu_ms if cpu_ms > 0 else math.inf
    accelerator_ms = sum(s.wall_ms for s in stages if s.accelerator)
    accelerator_fps = 1000 / accelerator_ms if accelerator_ms > 0 else None
    return Bound(cores, cpu_ms, cpu_fps, accelerator_fps)


def mean_costs(runs: Sequence[tuple[StageCost, ...]]) -> tuple[StageCost, ...]:
    """Each stage's cost averaged over several measurements of the same stages, in the same order."""
    names = {tuple(s.name for s in stages) for stages in runs}
    if len(names) != 1:
        raise ValueError(f"the measurements have different stages: {sorted(names)}")
    return tuple(dataclasses.replace(stages[0], wall_ms=statistics.fmean(s.wall_ms for s in stages),
                                     cpu_ms=statistics.fmean(s.cpu_ms for s in stages))
                 for stages in zip(*runs))


def profile_job(job: Job, frames: int | None = DEFAULT_FRAMES, tracer: Tracer | None = None,
                rounds: int = 1) -> Profile:
    """Profile ``job`` over its first ``frames`` output frames (all of them when None), in ``rounds`` rounds.

    Args:
        job: the job; its outputs are not touched (everything is written to a scratch folder).
        frames: output frames to measure and render. The processor can render a cut job only when the
            job has ``[features]`` (they set its length); without them it renders the whole job, while the
            stages are still measured over the first ``frames`` (costs are per frame either way).
        tracer: records the processor's spans during its first render (a fresh one when None).
        rounds: renders, each followed by a measurement of the stages (module doc, step 5).

    Raises:
        JobError: ``frames`` or ``rounds`` is not positive.
        ComposerError: the job's inputs are bad or a stage fails.
    """
    if frames is not None and frames < 1:
        raise JobError(f"profile: frames must be at least 1, got {frames}")
    if rounds < 1:
        raise JobError(f"profile: rounds must be at least 1, got {rounds}")
    tracer = tracer if tracer is not None else Tracer()
    cores = usable_cores()
    runs = []
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
            measured.append(measure_stages(trial, folder / f"measure-{k + 1}", frames, describe=False).stages)
    assert first.memory is not None  # described
    return Profile(job=job.path, frames=first.frames, decoded=first.decoded, size=first.size, provider=first.provider,
                   settings=first.settings, measured=tuple(measured), runs=tuple(runs), memory=first.memory,
                   cores=cores)
