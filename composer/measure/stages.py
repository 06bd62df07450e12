"""Stage costs: each stage of the frame step measured alone on one thread, and the bound those costs allow
(docs/design.md section 5).

Each stage runs alone, one frame at a time, on the caller's thread, on the job's own inputs: decode, prepare
(crop and resize, then stack the model input), infer, composite, and write (image encode + save and video
encode, separately when the job writes both), through the same :class:`composer.rendering.step.FrameStep` the
renderers call. Its wall time and its CPU time (``time.thread_time``) are summed over the frames. Every library
is held to one thread meanwhile (OpenCV, ONNX Runtime's intra-op pool, the FFmpeg decoder, x264), so the CPU
time is the stage's cheapest: the work itself, with no thread hand-offs and no work left on another thread where
the clock misses it. Costs are per output frame: decoding and cropping happen once per distinct template frame
the frames need (the cache makes reuse free), and pass-through frames cost only their write.

The bound: ``cores / sum(CPU-seconds per frame)`` frames per second; with an accelerator, the model's share is
time on the accelerator instead, and the bound is ``min(1 / accelerator seconds per frame, cores / sum(CPU-seconds
of the CPU stages))``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from composer.config.job import Job
from composer.inputs.plan import open_plan
from composer.inputs.sources import open_template
from composer.model.session import Model
from composer.output.writers import ImageFolderSink, VideoSink
from composer.rendering.layout import run_batch, warm_up
from composer.rendering.step import FrameStep, ModelInputs
from composer.runtime.threads import one_opencv_thread

__all__ = ["Bound", "Measurement", "StageCost", "compute_bound", "mean_costs", "measure_stages"]


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
    """What :func:`measure_stages` found: the stage costs and the facts of the job they depend on."""

    frames: int
    decoded: int
    size: tuple[int, int]
    provider: str
    stages: tuple[StageCost, ...]
    seconds: float = 0.0  # the measured work's wall time end to end: decoding, every stage, closing the outputs
    template: int = 0  # frames of the job's template


def _cost(name: str, wall: float, cpu: float, frames: int, work: str, accelerator: bool = False) -> StageCost:
    return StageCost(name, 1000 * wall / frames, 1000 * cpu / frames, work, accelerator)


def measure_stages(job: Job, scratch: Path, limit: int | None = None) -> Measurement:
    """Measure every stage alone on this thread over the job's first ``limit`` output frames (all if None).

    See the module doc for how. Images and video are written under ``scratch``; the template frames those
    output frames need are held in memory meanwhile.

    Raises:
        ComposerError: the job's inputs are bad.
    """
    with one_opencv_thread(), open_plan(job) as plan:
        spec, step = job.model, FrameStep(plan)
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
            close = getattr(decoded, "close", None)  # a generator's: the decoder ends now
            if close is not None:
                close()
        for t in needed:
            rect = plan.rects.get(int(t))
            if rect is not None:
                with crop:
                    step.crop(frames[t - lo], rect, out=crops[t - lo])
        seconds = time.perf_counter() - began  # and below, the loop's: not the model's loading and first call
        per_decode = (decode.wall / decode.calls, decode.cpu / decode.calls)

        model = Model(spec, feature_row_shape=tuple(plan.features.shape[1:]) if plan.features is not None else None,
                      window=job.features.window if job.features is not None else 1, threads=1,
                      batch=job.run.batch)
        batch = run_batch(job, model)
        inputs = ModelInputs.allocate(spec, model, batch)
        warm_up([model], batch)  # the first call allocates; not a cost of the steady state

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
                            frame = step.paste(frame, crops[t - lo], predictions[row], rect, out=out)
                        row += 1
                    if images_sink is not None:
                        with image_clock:
                            step.save(i, frame, images_sink)
                    if video_sink is not None:
                        with video_clock:
                            video_sink.write(frame)

            for i in range(n):
                t = int(order[i])
                rect = plan.rects.get(t)
                if rect is not None:
                    with stack:
                        step.prepare(i, crops[t - lo], inputs, count)
                    count += 1
                pending.append((i, t, rect))
                if count == batch or i == n - 1:
                    predictions = None
                    if count:
                        with infer:
                            predictions = step.infer(model, inputs, [j for j, _, r in pending if r is not None])
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
                  f"{infer.calls} calls of batch <= {batch} for {modelled} frames", model.accelerated),
            _cost("composite", comp.wall, comp.cpu, n, f"{comp.calls} frames"),
        ]
        if output.frames is not None:
            stages.append(_cost("write_image", image_clock.wall, image_clock.cpu, n,
                                f"{image_clock.calls} {output.format} encoded and saved"))
        if output.video is not None:
            stages.append(_cost("write_video", video_clock.wall, video_clock.cpu, n,
                                f"{n} frames, libx264 {output.preset} crf {output.crf}"))
        return Measurement(n, len(needed), (width, height), model.provider, tuple(stages), seconds,
                           plan.source.count)


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
