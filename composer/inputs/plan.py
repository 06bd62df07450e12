"""A job's inputs opened and checked against each other before the first frame is rendered."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import joblib
import numpy as np

from composer.config.job import Job
from composer.errors import JobError
from composer.inputs.features import feature_window, load_features
from composer.inputs.rects import Rects, load_rects
from composer.inputs.schedule import schedule
from composer.inputs.sources import TemplateSource, open_template
from composer.model.session import Model, expects_accelerator

DEFAULT_FPS = Fraction(25)
log = logging.getLogger("composer")


@dataclass(frozen=True)
class Plan:
    """Everything a renderer needs, checked: the template, its rectangles, the features and the schedule."""

    job: Job
    source: TemplateSource
    rects: Rects
    features: np.ndarray | None
    schedule: np.ndarray  # template frame of each output frame
    fps: Fraction

    @property
    def count(self) -> int:
        """Number of output frames."""
        return len(self.schedule)

    def window(self, i: int) -> np.ndarray | None:
        """The feature window of output frame ``i``, or None without features."""
        if self.features is None or self.job.features is None:
            return None
        return feature_window(self.features, i, self.job.features.window)

    def open_model(self, threads: int | None = None) -> Model:
        """The job's model, checked against the features, on ``threads`` intra-op threads.

        ``threads`` None: ``[run] threads``, else every usable core (one session doing all the work, as the
        reference loop and the seed designs run it).
        """
        features = self.job.features
        return Model(
            self.job.model,
            feature_row_shape=tuple(self.features.shape[1:]) if self.features is not None else None,
            window=features.window if features is not None else 1,
            threads=threads or self.job.run.threads or usable_cores(),
        )

    def open_lanes(self) -> list[Model]:
        """One model session per lane of :meth:`choose_layout`, each on its share of the cores."""
        layout, probe = self.choose_layout()
        lanes = [probe] if probe is not None and layout.threads == 1 else []
        while len(lanes) < layout.lanes:
            lanes.append(self.open_model(layout.threads))
        return lanes

    def open_segment_lanes(self) -> list[Model]:
        """The segment renderer's sessions, one per thread that renders segments (:func:`segment_layout`)."""
        lanes, threads = segment_layout(self.job)
        return [self.open_model(threads) for _ in range(lanes)]

    def open_render_lanes(self) -> list[Model]:
        """The sessions a render opens: the segment renderer's where :func:`segment_mode` picks it, else the
        pipeline's (:meth:`open_lanes`)."""
        return self.open_segment_lanes() if segment_mode(self.job) else self.open_lanes()

    def choose_layout(self, probe: Model | None = None) -> tuple[ModelLayout, Model | None]:
        """The model layout a render of this plan uses, and the one-thread session it measured, if any.

        Where the default depends on what the model costs (:func:`cost_decides`), the model runs on one thread
        first: see :func:`cheap_model`. ``probe``: a one-thread session of the model the caller already has,
        timed instead of opening another.
        """
        if not cost_decides(self.job):
            return model_layout(self.job), None
        probe = probe or self.open_model(1)
        seconds = frame_seconds(probe, run_batch(self.job, probe))
        pixels, cores = self.source.width * self.source.height, usable_cores()
        cheap = cheap_model(seconds, pixels, cores)
        log.info("model: %.1f ms a frame on one thread (%s than %.1f ms): %s", 1000 * seconds,
                 "no more" if cheap else "more", 1000 * cheap_seconds(pixels, cores),
                 "one lane on one thread keeps up" if cheap else "two lanes")
        return model_layout(self.job, cheap=cheap), probe


def usable_cores() -> int:
    """Cores this process may use; ``joblib.cpu_count`` honours container limits and affinity."""
    return max(1, int(joblib.cpu_count()))


CPU_BATCH = 1  # frames per model call on a CPU (see README, "Defaults")
ACCELERATOR_BATCH = 4  # frames per model call on CUDA or TensorRT


def run_batch(job: Job, model: Model) -> int:
    """Frames per model call: the model's fixed batch, else ``[run] batch``, else the provider's default.

    On a CPU, ONNX Runtime gains nothing from batching (the cost per frame stays flat or grows, and each
    session's arena grows with the batch): one frame per call was the heavy model's best point in every sweep
    (README, "Defaults"). An accelerator keeps its batches of 4.
    """
    return model.batch_size(wanted_batch(job, model.accelerated))


def wanted_batch(job: Job, accelerated: bool) -> int:
    """``[run] batch``, else the default for a model on an accelerator or on the CPU (before a fixed batch)."""
    return job.run.batch or (ACCELERATOR_BATCH if accelerated else CPU_BATCH)


def run_workers(job: Job) -> int:
    """Composite threads: ``[run] workers``, else one per usable core (at least two)."""
    return job.run.workers or max(2, usable_cores())


@dataclass(frozen=True)
class ModelLayout:
    """How the processor runs the model: ``lanes`` sessions side by side, ``threads`` intra-op threads each."""

    lanes: int
    threads: int
    accelerated: bool  # the first provider asked for is an accelerator

    def text(self) -> str:
        return f"{self.lanes} lane{'s' * (self.lanes > 1)} x {self.threads} thread{'s' * (self.threads > 1)}"


CHEAP_SECONDS_PER_PIXEL = 4e-9  # a 1280x720 frame's decode (5-6 ms) or composite and jpg (3-6 ms) costs more
PROBE_CALLS = 3  # timed model calls behind cheap_model at least, after one to warm the session up ...
PROBE_SECONDS = 0.05  # ... and more until they add up to this: a cheap model's three calls last a few ms, and
# a moment in which the machine was busy elsewhere made all three slow (a 2 ms model timed above 3.7 ms once)


def cheap_model(seconds: float, pixels: int, cores: int) -> bool:
    """Whether one thread running the model keeps up with the other stages on ``cores`` cores.

    ``seconds`` is one frame's inference on one thread. Each output frame of ``pixels`` pixels also costs
    its share of a decode, a crop, a composite and a save: at least :data:`CHEAP_SECONDS_PER_PIXEL` per pixel
    (3.7 ms at 1280x720). While the model takes no more than that spread over the other cores, one lane on
    one thread never paces the render; a second lane, or a second intra-op thread, would only hand the
    frames between more threads (on 2 cores, the light benchmark model's 200-frame render made 11-12% more
    fps on 1 lane x 1 thread than on 2 lanes x 1 thread in two sets of interleaved runs; see README,
    "Defaults").
    """
    return seconds <= cheap_seconds(pixels, cores)


def cheap_seconds(pixels: int, cores: int) -> float:
    """The most one frame's inference may cost on one thread for :func:`cheap_model`."""
    return CHEAP_SECONDS_PER_PIXEL * pixels / max(1, cores - 1)


def frame_seconds(model: Model, batch: int) -> float:
    """Seconds of one frame's inference on ``model``: the fastest of at least :data:`PROBE_CALLS` calls on a
    batch of zeros (and as many more as fit in :data:`PROBE_SECONDS`), after one that warms the session up,
    divided by ``batch``."""
    images, features = zero_batch(model, batch)
    model.run(images, features)
    best, spent, calls = math.inf, 0.0, 0
    while calls < PROBE_CALLS or spent < PROBE_SECONDS:
        began = time.perf_counter()
        model.run(images, features)
        took = time.perf_counter() - began
        best, spent, calls = min(best, took), spent + took, calls + 1
    return best / batch


def zero_batch(model: Model, batch: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A batch of zeros shaped for ``model``'s inputs: images, and features where it takes them."""
    inputs = model.inputs
    features = None
    if inputs.feature_shape is not None:
        features = np.zeros((batch, *inputs.feature_shape), np.float32)
    return np.zeros((batch, *inputs.image_shape), np.float32), features


def segment_mode(job: Job) -> bool:
    """Whether a render of ``job`` uses the segment renderer (:mod:`composer.rendering.segment_renderer`):
    ``[run] mode``; "auto" picks it for a model on the CPU with more than one usable core.

    There the per-frame work is the same in both renderers, and the pipeline's handoffs between threads cost
    more than they overlap: rendering whole segments on each core was 8-10% faster on the light benchmark model
    and up to 10% on the heavy one, with 3-4 ms less CPU a frame (README, "Defaults"). On an accelerator the
    pipeline keeps one session fed with batches.
    """
    if job.run.mode == "auto":
        return usable_cores() > 1 and not expects_accelerator(job.model.provider)
    return job.run.mode == "segments"


def renders_segments(job: Job, chunk: int, frames: int) -> bool:
    """Whether a render of ``job`` runs the segment renderer, with ``chunk`` of the template's ``frames`` frames
    cached: where :func:`segment_mode` picks it and the whole template fits (else the pipeline renders)."""
    return segment_mode(job) and chunk >= frames


def segment_layout(job: Job) -> tuple[int, int]:
    """The segment renderer's lanes and intra-op threads each: ``[run] lanes`` (else one per usable core) and
    ``[run] threads`` (else one: the lanes already fill the cores)."""
    return job.run.lanes or usable_cores(), job.run.threads or 1


def cost_decides(job: Job) -> bool:
    """Whether the default model layout depends on what the model costs: a CPU with more than one core, and
    ``[run] lanes`` and ``threads`` both left to composer."""
    run = job.run
    return (run.lanes is None and run.threads is None and usable_cores() > 1
            and not expects_accelerator(job.model.provider))


def model_layout(job: Job, cheap: bool = False) -> ModelLayout:
    """Model lanes and intra-op threads: ``[run] lanes`` / ``threads``, else chosen from the provider, the
    cores and, where it was measured, the model's cost (``cheap``: see :func:`cheap_model`).

    On a CPU the default is two lanes (fewer on one core), each with its share of the cores. A session's
    intra-op threads meet at a barrier after every operator, so when a composite, image or encoder thread
    takes one of their cores the others wait; two sessions on one thread each never wait for each other and
    keep every core busy (measured on 2 cores: see README, "Defaults"). More lanes would each keep a
    model-sized memory arena. A cheap model gets one lane on one thread. An accelerator gets one lane: the
    model thread only waits on the device there.
    """
    cores = usable_cores()
    accelerated = expects_accelerator(job.model.provider)
    if cheap and cost_decides(job):
        return ModelLayout(1, 1, accelerated)
    lanes = job.run.lanes or (1 if accelerated else min(2, cores))
    threads = job.run.threads or max(1, cores // lanes)
    return ModelLayout(lanes, threads, accelerated)


def lanes_layout(lanes: Sequence[Model]) -> ModelLayout:
    """The layout of open model lanes."""
    return ModelLayout(len(lanes), lanes[0].threads, lanes[0].accelerated)


def default_layout(job: Job) -> ModelLayout:
    """The model layout a render of ``job`` would use (measuring the model where the default depends on it).

    Raises:
        ComposerError: the job's inputs or its model are bad.
    """
    with open_plan(job) as plan:
        return plan.choose_layout()[0]


@dataclass(frozen=True)
class EncoderLayout:
    """How the video is encoded: ``encoders`` segments side by side, x264 on ``threads`` threads each.

    ``threads`` None (several encoders only) means one thread per segment while another segment is encoded
    beside it, and x264's own choice for the video's last segment, which has no company.
    """

    encoders: int
    threads: int | None  # 0: x264's own choice; None: 1, and x264's own for the last segment
    per_lane: bool = False  # the segment renderer's: an x264 in each lane, on the range it renders

    def text(self) -> str:
        if self.per_lane:
            return ("an x264 per lane, on x264's threads" if not self.threads else
                    f"an x264 per lane, {self.threads} thread{'s' * (self.threads > 1)} each")
        if self.threads is None:
            threads = "1 thread (x264's own for the last segment)"
        elif self.threads:
            threads = f"{self.threads} thread{'s' * (self.threads > 1)}"
        else:
            threads = "x264's threads"
        return f"{self.encoders} encoder{'s' * (self.encoders > 1)} x {threads}"


def encoder_layout(job: Job) -> EncoderLayout:
    """Video encoders and x264 threads each: ``[run] encoders`` / ``encoder_threads``, else two encoders (one
    on one core) on one x264 thread each, the last segment on x264's own threads.

    Two x264s encoding alternate segments kept 2 cores busier than one x264 on its frame threads, which wait
    on each other: 63-64 against 56 fps for the light benchmark model over 1,000 frames (README, "Defaults").
    Beside each other, one thread each costs less CPU than x264's frame threads (+3.4% fps over four pairs of
    light renders); the last segment has no neighbour, and x264's own threads finish it sooner. One encoder
    keeps x264's own threads.
    """
    encoders = job.run.encoders or min(2, usable_cores())
    threads = job.run.encoder_threads
    if threads is None and encoders == 1:
        threads = 0
    return EncoderLayout(encoders, threads)


def segment_encoders(job: Job) -> EncoderLayout:
    """The segment renderer's video encoding: one x264 per lane, each on the segment it renders, on
    ``[run] encoder_threads`` (else one thread: the lanes already fill the cores)."""
    threads = job.run.encoder_threads
    return EncoderLayout(1, 1 if threads is None else threads, per_lane=True)


@contextlib.contextmanager
def open_plan(job: Job) -> Iterator[Plan]:
    """Open and check a job's inputs; the template is closed on exit.

    Raises:
        JobError: an input is missing, malformed or does not fit the others.
        SourceError: the template cannot be opened.
    """
    if job.output.frames is None and job.output.video is None:
        raise JobError("job key output: nothing to write; set output.frames and/or output.video")
    features = load_features(job.features.path) if job.features is not None else None
    with open_template(job.template.source) as source:
        rects = load_rects(job.template.rects, source.count)
        rects.check_bounds(source.width, source.height, job.template.rects)
        count = len(features) if features is not None else source.count
        order = schedule(count, source.count, job.run.loop)
        fps = job.output.fps or source.fps or DEFAULT_FPS
        yield Plan(job=job, source=source, rects=rects, features=features, schedule=order, fps=fps)
