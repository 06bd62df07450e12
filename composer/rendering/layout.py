"""The one decision a render runs with: which renderer, and with how many lanes, threads, frames per model call,
composite workers, cached template frames and video encoders (docs/design.md section 4).

:func:`choose_layout` makes it once the facts are in: the provider the model really runs on, what one frame's
inference costs, what one session holds in memory, and so how many template frames the cache can keep. Render,
profile, sweep and the benchmarks all read its answer (:class:`RenderLayout`). The defaults it applies are the
plain functions of :mod:`composer.config.defaults`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil

from composer.config import defaults
from composer.config.defaults import (
    EncoderLayout,
    ModelLayout,
    cheap_model,
    cheap_seconds,
    cost_decides,
    encoder_layout,
    model_layout,
    run_workers,
    segment_encoders,
    segment_layout,
    segment_mode,
    wanted_batch,
)
from composer.config.job import Job
from composer.inputs.plan import Plan, open_plan
from composer.model.session import Model, NonFiniteOutput
from composer.rendering.memory import frame_bytes, pipeline_bytes, segment_bytes
from composer.rendering.preload import chunk_size

log = logging.getLogger("composer")
PROBE_CALLS = 3  # timed model calls behind cheap_model at least, after one to warm the session up ...
PROBE_SECONDS = 0.05  # ... and more until they add up to this: one busy moment elsewhere can slow three short calls


@dataclass(frozen=True)
class RenderLayout:
    """How a render runs: the renderer (``"segments"`` or ``"pipeline"``), its model lanes, frames per model
    call, composite workers (the pipeline's; 0 for the segment renderer), template frames cached per chunk and
    video encoding."""

    renderer: str
    model: ModelLayout
    batch: int
    workers: int
    chunk: int
    encoders: EncoderLayout

    @property
    def segments(self) -> bool:
        return self.renderer == "segments"

    def text(self) -> str:
        if self.segments:
            return f"segments: {self.model.text()}, batch {self.batch}, each lane rendering whole segments"
        return f"pipeline: model {self.model.text()}, batch {self.batch}; {self.workers} composite workers"

    def settings(self, video: bool) -> dict[str, Any]:
        """The layout as the profile and the sweep report it."""
        run: dict[str, Any] = {"mode": self.renderer, "batch": self.batch, "workers": self.workers,
                               "lanes": self.model.lanes, "threads": self.model.threads, "chunk": self.chunk}
        if video:
            run |= {"encoders": self.encoders.encoders, "video": self.encoders.text()}
        return run


def run_batch(job: Job, model: Model) -> int:
    """Frames per model call: the model's fixed batch, else ``[run] batch``, else the provider's default."""
    return model.batch_size(wanted_batch(job, model.accelerated))


def zero_batch(model: Model, batch: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A batch of zeros shaped for ``model``'s inputs: images, and features where it takes them."""
    inputs = model.inputs
    features = None
    if inputs.feature_shape is not None:
        features = np.zeros((batch, *inputs.feature_shape), np.float32)
    return np.zeros((batch, *inputs.image_shape), np.float32), features


def _run_on_zeros(model: Model, images: np.ndarray, features: np.ndarray | None) -> None:
    """One call on a batch of zeros; an output that is not finite is no fault there (see :meth:`Model.run`)."""
    with contextlib.suppress(NonFiniteOutput):
        model.run(images, features)


def warm_up(lanes: Sequence[Model], batch: int) -> None:
    """Run each lane once on a batch of zeros, so ONNX Runtime's arenas reach their working size now: before the
    memory is counted, and outside the render's time."""
    for model in lanes:
        _run_on_zeros(model, *zero_batch(model, batch))


def frame_seconds(model: Model, batch: int) -> float:
    """Seconds of one frame's inference on ``model``: the fastest of at least :data:`PROBE_CALLS` calls on a
    batch of zeros (and as many more as fit in :data:`PROBE_SECONDS`), after one that warms the session up,
    divided by ``batch``."""
    images, features = zero_batch(model, batch)
    _run_on_zeros(model, images, features)
    best, spent, calls = math.inf, 0.0, 0
    while calls < PROBE_CALLS or spent < PROBE_SECONDS:
        began = time.perf_counter()
        _run_on_zeros(model, images, features)
        took = time.perf_counter() - began
        best, spent, calls = min(best, took), spent + took, calls + 1
    return best / batch


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def choose_layout(plan: Plan) -> tuple[RenderLayout, list[Model]]:
    """Decide how ``plan`` renders, and return the one-thread sessions that were opened to decide it.

    1. A one-thread session of the model is opened and warmed up: it tells the provider the model really runs
       on and a fixed batch. Where a render may run several lanes, a second one is opened the same way: the
       process's growth while it opened is what each further session holds (the first also pays for loading
       ONNX Runtime itself).
    2. The segment renderer, where ``[run] mode`` asks for it (:func:`composer.config.defaults.segment_mode`),
       if the whole template fits the cache once its lanes' sessions, buffers and x264s are counted.
    3. Otherwise the pipeline, with its own lanes (timed on the session above where the default depends on the
       model's cost) and as many template frames per chunk as the memory leaves.

    The cache may take ``[run] memory_budget`` less everything else the render holds, or, without a budget,
    ``memory_fraction`` of the memory available now; ``[run] chunk`` sets it outright.

    Raises:
        ComposerError: the model cannot be loaded or does not fit the job.
    """
    job, source = plan.job, plan.source
    before = _rss()
    probe = plan.open_model(1)
    batch = run_batch(job, probe)
    warm_up([probe], batch)
    opened, accelerated, session = [probe], probe.accelerated, max(0, _rss() - before)
    if job.run.lanes != 1 and not accelerated and defaults.usable_cores() > 1:
        before = _rss()
        opened.append(plan.open_model(1))
        warm_up(opened[1:], batch)
        session = max(0, _rss() - before)
    held = _rss()
    width, height, spec = source.width, source.height, job.model
    shape = probe.inputs.feature_shape
    video = job.output.video is not None

    def cache(layout: ModelLayout, working: int) -> int:
        more = max(0, layout.lanes - (len(opened) if layout.threads == 1 else 0))  # sessions still to open
        return _cache_frames(job, frame_bytes(width, height, spec.crop), source.count,
                             held + more * session + working)

    if segment_mode(job, accelerated):
        lanes = segment_layout(job, accelerated)
        chunk = cache(lanes, segment_bytes(width, height, spec, shape, video, batch, lanes.lanes))
        if chunk >= source.count:
            return RenderLayout("segments", lanes, batch, 0, source.count, segment_encoders(job)), opened
        (log.warning if job.run.mode == "segments" else log.info)(
            "the segment renderer (%s) needs all %d template frames cached, the memory allows %d; rendering with "
            "the pipeline", lanes.text(), source.count, chunk)
    cheap = False
    if cost_decides(job, accelerated):
        seconds = frame_seconds(probe, batch)
        pixels, cores = width * height, defaults.usable_cores()
        cheap = cheap_model(seconds, pixels, cores)
        log.info("model: %.1f ms a frame on one thread (%s than %.1f ms): %s", 1000 * seconds,
                 "no more" if cheap else "more", 1000 * cheap_seconds(pixels, cores),
                 "one lane on one thread keeps up" if cheap else "two lanes")
    lanes = model_layout(job, accelerated, cheap)
    workers, encoders = run_workers(job), encoder_layout(job, accelerated)
    chunk = cache(lanes, pipeline_bytes(width, height, spec, shape, video, batch, workers, lanes.lanes,
                                        encoders.encoders))
    return RenderLayout("pipeline", lanes, batch, workers, chunk, encoders), opened


def _cache_frames(job: Job, per_frame: int, frames: int, held: int) -> int:
    """Template frames per chunk: ``[run] chunk``, else what the budget leaves once ``held`` bytes are counted."""
    run = job.run
    if run.chunk is not None:
        return min(run.chunk, frames)
    if run.memory_budget is not None:
        budget = run.memory_budget - held
        if budget < 2 * per_frame:
            log.warning("memory_budget %d MB: the model sessions and the working buffers already take %d MB; "
                        "caching one template frame at a time", run.memory_budget // 10**6, held // 10**6)
    else:
        budget = int(psutil.virtual_memory().available * run.memory_fraction)
    return chunk_size(max(0, budget), per_frame, frames)


def open_render(plan: Plan) -> tuple[RenderLayout, list[Model]]:
    """:func:`choose_layout`, then the sessions of its lanes, each warmed up.

    Raises:
        ComposerError: the model cannot be loaded or does not fit the job.
    """
    layout, opened = choose_layout(plan)
    lanes = opened[: layout.model.lanes] if layout.model.threads == 1 else []  # warmed up already
    fresh = [plan.open_model(layout.model.threads) for _ in range(layout.model.lanes - len(lanes))]
    warm_up(fresh, layout.batch)
    lanes += fresh
    log.info("model %s runs on %s", plan.job.model.path.name, lanes[0].provider)  # once, however many sessions
    cached = layout.chunk * frame_bytes(plan.source.width, plan.source.height, plan.job.model.crop)
    log.info("cache: %d of %d template frames per chunk (%d MB%s)", layout.chunk, plan.source.count,
             cached // 10**6, "" if layout.chunk >= plan.source.count else " per slot, two slots")
    log.info("%s", layout.text())
    return layout, lanes


def default_layout(job: Job) -> RenderLayout:
    """The layout a render of ``job`` would run with (:func:`choose_layout`, which may time the model).

    Raises:
        ComposerError: the job's inputs or its model are bad.
    """
    with open_plan(job) as plan:
        return choose_layout(plan)[0]
