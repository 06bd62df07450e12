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


def usable_cores() -> int:
    """Cores this process may use; ``joblib.cpu_count`` honours container limits and affinity."""
    return max(1, int(joblib.cpu_count()))


def wanted_batch(job: Job, accelerated: bool) -> int:
    """``[run] batch``, else the default for a model on an accelerator or on the CPU (before a fixed batch).

    On a CPU, ONNX Runtime gains nothing from batching (the cost per frame stays flat or grows, and each
    session's arena grows with the batch); an accelerator keeps its batches of 4.
    """
    return job.run.batch or (ACCELERATOR_BATCH if accelerated else CPU_BATCH)


def run_workers(job: Job) -> int:
    """The pipeline's composite threads: ``[run] workers``, else one per usable core (at least two)."""
    return job.run.workers or max(2, usable_cores())


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
    the others wait, while two one-thread sessions never wait for each other. A cheap model gets one lane on one
    thread. An accelerator gets one lane: the model thread only waits on the device there.
    """
    cores = usable_cores()
    if cheap and cost_decides(job, accelerated):
        return ModelLayout(1, 1, accelerated)
    lanes = job.run.lanes or (1 if accelerated else min(2, cores))
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


def encoder_layout(job: Job) -> EncoderLayout:
    """The pipeline's video encoders: ``[run] encoders``, else two (one on one core), on alternate segments.
    Two one-thread x264s on alternate segments keep two cores busier than one x264 whose frame threads wait on
    each other."""
    return EncoderLayout(job.run.encoders or min(2, usable_cores()))


def segment_encoders(job: Job) -> EncoderLayout:
    """The segment renderer's video encoding: one x264 per lane, each on the segment it renders."""
    return EncoderLayout(1, per_lane=True)
