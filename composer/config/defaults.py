"""The defaults composer fills in for ``[run]`` keys left to it: plain functions of the job and of facts about the
machine and the model (cores, whether the model runs on an accelerator, what one frame's inference costs).

:func:`composer.rendering.layout.choose_layout` gathers those facts and makes the one decision a render runs
with; the reasons behind each default, and the measurements that chose them, are in docs/performance.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import joblib

from composer.config.job import Job

CPU_BATCH = 1  # frames per model call on a CPU
ACCELERATOR_BATCH = 4  # frames per model call on CUDA or TensorRT
CHEAP_SECONDS_PER_PIXEL = 4e-9  # a 1280x720 frame's decode (5-6 ms) or composite and jpg (3-6 ms) costs more
# Intra-op threads of one CPU session: past about 8, each operator's barrier costs more than the share of work
# another thread takes off the rest; more cores get more lanes instead (docs/design.md, "Many cores").
CPU_THREADS_PER_LANE = 8
# Intra-op threads of a session on an accelerator: only the few operators the provider leaves to the CPU use them,
# and with one thread the session opened to probe the provider becomes the lane (no second engine loaded).
ACCELERATOR_THREADS = 1
# Composite workers: one per core, up to this many; past it the one decoder and the writers pace the render.
MAX_DEFAULT_WORKERS = 32
# Video encoders (one x264 thread each) per core, as the share of a frame's CPU time that x264 takes: at
# 1280x720, veryfast, crf 18 one x264 thread takes about 26 ms a frame (RESULTS.md, write_video), against
# about 10 ms for decoding, the crop and paste and a jpg together, and 60 ms more for the heavy model on a CPU.
CPU_ENCODERS_PER_CORE = (1, 3)  # heavy model on the CPU: 26 of 92 ms; a light one needs more (the segment
# renderer, the CPU's default, has an x264 per lane anyway)
ACCELERATOR_ENCODERS_PER_CORE = (3, 4)  # the model off the host: 26 of about 36 ms
MAX_DEFAULT_ENCODERS = 48  # each x264 holds its look-ahead frames (about 50 MB at 1280x720)


def usable_cores() -> int:
    """Cores this process may use; ``joblib.cpu_count`` honours container limits and affinity."""
    return max(1, int(joblib.cpu_count()))


def wanted_batch(job: Job, accelerated: bool) -> int:
    """``[run] batch``, else the default for a model on an accelerator or on the CPU (before a fixed batch).

    On a CPU, ONNX Runtime gains nothing from batching (the cost per frame stays flat or grows, and each
    session's arena grows with the batch); an accelerator keeps its batches of 4.
    """
    return default_batch(job.run.batch, accelerated)


def default_batch(batch: int | None, accelerated: bool) -> int:
    """``batch``, else the default for a model on an accelerator or on the CPU (:func:`wanted_batch`)."""
    return batch or (ACCELERATOR_BATCH if accelerated else CPU_BATCH)


def run_workers(job: Job) -> int:
    """The pipeline's composite threads: ``[run] workers``, else one per usable core (at least two, at most
    :data:`MAX_DEFAULT_WORKERS`)."""
    return job.run.workers or max(2, min(usable_cores(), MAX_DEFAULT_WORKERS))


@dataclass(frozen=True)
class ModelLayout:
    """How the model runs: ``lanes`` sessions side by side, ``threads`` intra-op threads each."""

    lanes: int
    threads: int
    accelerated: bool  # the first provider asked for is an accelerator

    def text(self) -> str:
        return f"{self.lanes} lane{'s' * (self.lanes > 1)} x {self.threads} thread{'s' * (self.threads > 1)}"


def cheap_model(seconds: float, pixels: int, cores: int) -> bool:
    """Whether one thread running the model keeps up with the other stages on ``cores`` cores.

    ``seconds`` is one frame's inference on one thread. Each output frame of ``pixels`` pixels also costs its
    share of a decode, a crop, a composite and a save: at least :data:`CHEAP_SECONDS_PER_PIXEL` per pixel
    (3.7 ms at 1280x720). While the model takes no more than that spread over the other cores, one lane on one
    thread never paces the render; a second lane would only hand the frames between more threads.
    """
    return seconds <= cheap_seconds(pixels, cores)


def cheap_seconds(pixels: int, cores: int) -> float:
    """The most one frame's inference may cost on one thread for :func:`cheap_model`."""
    return CHEAP_SECONDS_PER_PIXEL * pixels / max(1, cores - 1)


def segment_mode(job: Job, accelerated: bool) -> bool:
    """Whether ``job`` asks for the segment renderer: ``[run] mode``; "auto" picks it for a model on the CPU with
    more than one usable core, where rendering whole segments on each core beat the pipeline's handoffs between
    threads. On an accelerator the pipeline keeps one session fed with batches. (Whether it runs also depends on
    the memory: :func:`composer.rendering.layout.choose_layout`.)"""
    if job.run.mode == "auto":
        return usable_cores() > 1 and not accelerated
    return job.run.mode == "segments"


def segment_layout(job: Job, accelerated: bool = False) -> ModelLayout:
    """The segment renderer's lanes and intra-op threads each: ``[run] lanes`` (else one per usable core) and
    ``[run] threads`` (else one: the lanes already fill the cores)."""
    return ModelLayout(job.run.lanes or usable_cores(), job.run.threads or 1, accelerated)


def cost_decides(job: Job, accelerated: bool) -> bool:
    """Whether the pipeline's default model layout depends on what the model costs: a CPU with more than one
    core, and ``[run] lanes`` and ``threads`` both left to composer."""
    run = job.run
    return run.lanes is None and run.threads is None and usable_cores() > 1 and not accelerated


def model_layout(job: Job, accelerated: bool, cheap: bool = False) -> ModelLayout:
    """The pipeline's model lanes and intra-op threads: ``[run] lanes`` / ``threads``, else chosen from the
    provider, the cores and, where it was measured, the model's cost (``cheap``: see :func:`cheap_model`).

    On a CPU the default is two lanes (fewer on one core), each with its share of the cores: a session's
    intra-op threads meet at a barrier after every operator, so when another thread takes one of their cores
    the others wait, while two one-thread sessions never wait for each other. Past 16 cores, one lane per
    :data:`CPU_THREADS_PER_LANE` cores (8 lanes of 8 threads on 64). A cheap model gets one lane on one thread.
    An accelerator gets one lane on :data:`ACCELERATOR_THREADS` threads: the model thread only waits on the
    device there, and the host's cores go to decoding, compositing and x264.
    """
    cores = usable_cores()
    if cheap and cost_decides(job, accelerated):
        return ModelLayout(1, 1, accelerated)
    if accelerated:
        lanes = job.run.lanes or 1
        return ModelLayout(lanes, job.run.threads or ACCELERATOR_THREADS, accelerated)
    lanes = job.run.lanes or max(min(2, cores), cores // CPU_THREADS_PER_LANE)
    threads = job.run.threads or max(1, cores // lanes)
    return ModelLayout(lanes, threads, accelerated)


@dataclass(frozen=True)
class EncoderLayout:
    """How the video is encoded: ``encoders`` segments side by side, each x264 on one thread (the video's
    bytes depend on the job alone: :data:`composer.output.resume.X264_THREADS`). ``per_lane``: the segment
    renderer's, an x264 in each lane on the segment it renders."""

    encoders: int
    per_lane: bool = False

    def text(self) -> str:
        if self.per_lane:
            return "an x264 per lane, 1 thread each"
        return f"{self.encoders} encoder{'s' * (self.encoders > 1)} x 1 thread"


def default_encoders(cores: int, accelerated: bool) -> int:
    """Video segments encoded side by side when ``[run] encoders`` is left to composer: x264's share of the
    cores (:data:`CPU_ENCODERS_PER_CORE`, :data:`ACCELERATOR_ENCODERS_PER_CORE`), at least two (one on one
    core). Beside an accelerator x264 is most of the host's work: on 16 cores 12 single-threaded x264s encode
    about 460 frames a second at 1280x720 while the other 4 cores decode, paste and write about 400, so
    neither side caps the other. An encoder with no segment to encode only waits, so erring high costs memory,
    not speed."""
    num, den = ACCELERATOR_ENCODERS_PER_CORE if accelerated else CPU_ENCODERS_PER_CORE
    return min(MAX_DEFAULT_ENCODERS, max(min(2, cores), cores * num // den))


def encoder_layout(job: Job, accelerated: bool = False) -> EncoderLayout:
    """The pipeline's video encoders: ``[run] encoders``, else :func:`default_encoders`, each on one x264 thread
    (every segment's encoding is the job's, 4.9). Several x264s on alternate segments keep more cores busy than
    one x264 whose frame threads wait on each other, and the video's parallelism comes from them."""
    return EncoderLayout(job.run.encoders or default_encoders(usable_cores(), accelerated))


def segment_encoders(job: Job) -> EncoderLayout:
    """The segment renderer's video encoding: one x264 per lane, each on the segment it renders."""
    return EncoderLayout(1, per_lane=True)
