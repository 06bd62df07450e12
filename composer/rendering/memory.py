"""What a render holds in memory besides its template cache, renderer by renderer (docs/design.md section 4).

``[run] memory_budget`` bounds the whole render: :func:`composer.rendering.layout.choose_layout` subtracts the
process as it stands, the model sessions still to open and these working buffers from the budget, and the cache
gets the rest. Each figure counts what the renderer really allocates: its model inputs and outputs, its frame
buffers, the frames in flight between its threads and its x264 encoders (one per lane for the segment renderer).
"""

from __future__ import annotations

import math

from composer.config.job import ModelSpec
from composer.output.video_segments import encoder_backlog, pooled_frames

ENCODER_FRAMES = 40  # one x264 (veryfast) at 1280x720 held 29-41 BGR frames' worth of memory, on 1 or 3 threads
PIPELINE_DEPTH = 2  # batches queued between the pipeline's batcher and its model lanes
SPARE_FRAMES = 4  # segment renderer: converted frames rendered ahead of their encoder, per frame of batch


def frame_bytes(width: int, height: int, crop: int) -> int:
    """Bytes one cached template frame costs: the full frame plus its crop."""
    return 3 * (width * height + crop * crop)


def sample_bytes(spec: ModelSpec, feature_shape: tuple[int, ...] | None) -> int:
    """Bytes of one frame's model input: the image and, with features, its window."""
    return 4 * (spec.image_channels * spec.window**2 + math.prod(feature_shape or (0,)))


def prediction_bytes(spec: ModelSpec) -> int:
    """Bytes of one frame's model output."""
    return 4 * 3 * spec.window**2


def slot_count(batch: int, workers: int) -> int:
    """The pipeline's output slots: every frame that can be in flight at once has one (the writer's queue, the
    frame being written, and a batch the lane at the turnstile is handing out)."""
    return in_flight(batch, workers) + batch + 2


def in_flight(batch: int, workers: int) -> int:
    """Frames the pipeline's model lanes may have handed to the composite pool and the writer at once."""
    return 2 * batch + workers


def input_count(lanes: int, depth: int = PIPELINE_DEPTH) -> int:
    """The pipeline's model input buffers: one per queued batch, one per lane inferring, one the batcher fills."""
    return depth + lanes + 1


def pipeline_bytes(width: int, height: int, spec: ModelSpec, feature_shape: tuple[int, ...] | None, video: bool,
                   batch: int, workers: int, lanes: int, encoders: int) -> int:
    """The pipeline's working buffers: output slots, model inputs and outputs, encoders and their backlog."""
    frame = 3 * width * height
    slot = frame + (frame // 2 if video else 0)
    total = slot_count(batch, workers) * slot + input_count(lanes) * batch * sample_bytes(spec, feature_shape)
    total += lanes * batch * prediction_bytes(spec)
    if video:
        total += encoders * ENCODER_FRAMES * frame + pooled_frames(encoders, encoder_backlog(encoders)) * frame // 2
    return total


def segment_bytes(width: int, height: int, spec: ModelSpec, feature_shape: tuple[int, ...] | None, video: bool,
                  batch: int, lanes: int) -> int:
    """The segment renderer's working buffers: each lane's model inputs and outputs, output frame and x264
    (one per lane), and the spare converted frames the lanes render ahead of each other's encoders."""
    frame = 3 * width * height
    lane = batch * (sample_bytes(spec, feature_shape) + prediction_bytes(spec)) + frame
    if video:
        lane += frame // 2 + ENCODER_FRAMES * frame
    return lanes * lane + (SPARE_FRAMES * batch * frame // 2 if video else 0)
