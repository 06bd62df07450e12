"""Every key of the job file, once: its check, whether it is required, and the keys composer no longer takes
(docs/design.md section 1). :mod:`composer.config.job` builds the job from what these checks return."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from composer.config.checks import (
    Check,
    auto_or,
    batch_profile,
    boolean,
    byte_size,
    choice,
    cluster_address,
    fail,
    file_path,
    fps,
    fraction_01,
    inputs,
    integer,
    mask,
    number,
    optional_file_path,
    optional_output_file,
    type_name,
)
from composer.config.features import row_shape
from composer.config.limits import (
    MAX_BATCH,
    MAX_CHUNK_SECONDS,
    MAX_CRF,
    MAX_CROP,
    MAX_DEVICES,
    MAX_ENCODERS,
    MAX_FRAMES,
    MAX_OVERLAP_SECONDS,
    MAX_QUALITY,
    MAX_ROWS_PER_SECOND,
    MAX_SAMPLE_RATE,
    MAX_THREADS,
    MAX_WINDOW,
    MIN_CHUNK_SECONDS,
    MIN_SAMPLE_RATE,
    X264_PRESETS,
)
from composer.errors import JobError

__all__ = ["CONV_SEARCHES", "INTERPOLATIONS", "LOOPS", "MODES", "PATH_KEYS", "PROVIDERS", "REMOVED", "SCHEMA",
           "SWITCHES", "checked_section"]

INTERPOLATIONS = ("linear", "area", "cubic", "nearest")
PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")
LOOPS = ("pingpong", "repeat", "once")
MODES = ("auto", "segments", "pipeline")
CONV_SEARCHES = ("heuristic", "exhaustive", "default")

# Why each maximum: composer.config.limits.
_THREADS = integer(1, MAX_THREADS)


# section -> key -> (check, required)
SCHEMA: dict[str, dict[str, tuple[Check, bool]]] = {
    "template": {"video": (file_path, False), "frames": (file_path, False), "rects": (file_path, True)},
    "features": {
        "path": (file_path, False),
        "window": (integer(1, MAX_WINDOW), False),
        "audio": (file_path, False),
        "encoder": (file_path, False),
        "sample_rate": (integer(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE), False),
        "rows_per_second": (integer(1, MAX_ROWS_PER_SECOND), False),
        "chunk_seconds": (number(MIN_CHUNK_SECONDS, MAX_CHUNK_SECONDS), False),
        "overlap_seconds": (number(0, MAX_OVERLAP_SECONDS), False),
        "row_shape": (row_shape, False),
    },
    "model": {
        "path": (file_path, True),
        "crop": (integer(1, MAX_CROP, "H.264's widest frame"), True),
        "border": (integer(0, MAX_CROP), False),
        "inputs": (inputs, False),
        "mask": (mask, False),
        "color": (choice(("bgr", "rgb")), False),
        "resize_in": (choice(INTERPOLATIONS), False),
        "resize_out": (choice(INTERPOLATIONS), False),
        "provider": (choice(PROVIDERS), False),
        "io_binding": (auto_or(boolean), False),
        "device_id": (integer(0, MAX_DEVICES - 1), False),
        "cudnn_conv_algo_search": (choice(CONV_SEARCHES), False),
        "gpu_memory_limit": (byte_size, False),
        "fp16": (boolean, False),
        "cache": (file_path, False),
        "trt_batches": (batch_profile(MAX_BATCH), False),
    },
    "composite": {"blend": (choice(("hard", "feather")), False), "feather": (integer(0, MAX_CROP), False)},
    "output": {
        "frames": (optional_file_path, False),
        "format": (choice(("png", "jpg")), False),
        "quality": (integer(0, MAX_QUALITY), False),
        "video": (optional_output_file, False),
        "fps": (fps, False),
        "audio": (optional_file_path, False),
        "crf": (integer(0, MAX_CRF, "x264's scale"), False),
        "preset": (choice(X264_PRESETS), False),
    },
    "run": {
        "batch": (auto_or(integer(1, MAX_BATCH)), False),
        "workers": (auto_or(_THREADS), False),
        "chunk": (auto_or(integer(1, MAX_FRAMES, "the longest template")), False),
        "memory_fraction": (fraction_01, False),
        "memory_budget": (byte_size, False),
        "loop": (choice(LOOPS), False),
        "lanes": (auto_or(_THREADS), False),
        "threads": (auto_or(_THREADS), False),
        "encoders": (auto_or(integer(1, MAX_ENCODERS)), False),
        "mode": (choice(MODES), False),
        "cluster": (cluster_address, False),
    },
}
REQUIRED_SECTIONS = ("template", "model")
SWITCHES = (optional_file_path, optional_output_file)  # keys an empty value switches off rather than clears
REMOVED = {  # keys composer no longer takes, and why
    "run.encoder_threads": "no longer a key: x264 encodes each segment on one thread, so that every run of a "
                           "job writes the same video (remove it)",
}
PATH_KEYS = frozenset(
    f"{section}.{key}"
    for section, keys in SCHEMA.items()
    for key, (check, _) in keys.items()
    if check in (file_path, optional_file_path, optional_output_file)
)


def checked_section(raw: Mapping[str, Any], name: str, base: Path) -> dict[str, Any] | None:
    if name not in raw:
        if name in REQUIRED_SECTIONS:
            raise JobError(f"job: missing section [{name}]")
        return None
    table = raw[name]
    if not isinstance(table, Mapping):
        raise JobError(f"job key {name}: expected a table [{name}], got {type_name(table)}")
    schema = SCHEMA[name]
    for key in table:
        if f"{name}.{key}" in REMOVED:
            raise fail(f"{name}.{key}", REMOVED[f"{name}.{key}"])
        if key not in schema:
            raise fail(f"{name}.{key}", f"unknown key (known: {', '.join(schema)})")
    values = {}
    for key, (check, required) in schema.items():
        if key in table:
            values[key] = check(f"{name}.{key}", table[key], base)
        elif required:
            raise fail(f"{name}.{key}", "missing")
    return values
