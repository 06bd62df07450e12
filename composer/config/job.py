"""The job file: loaded, validated and resolved once into frozen objects (docs/design.md section 1).

Every key is declared once in :mod:`composer.config.schema` with its check; unknown keys and wrong types are
rejected with a message that names ``section.key``. Paths resolve against the job file's folder, or against
the current directory when they come from the command line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from composer.config.checks import fail, shown
from composer.config.features import FeaturesSpec, check_audio_features
from composer.config.limits import MAX_JOB_BYTES, MAX_THREADS_IN_ALL, check_nesting
from composer.config.schema import PATH_KEYS, SCHEMA, SWITCHES, checked_section
from composer.errors import JobError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib



@dataclass(frozen=True)
class TemplateSpec:
    """Where the full frames and their rectangles come from."""

    source: Path
    rects: Path


@dataclass(frozen=True)
class ModelSpec:
    """The model and the geometry of what it sees."""

    path: Path
    crop: int
    border: int = 0
    inputs: tuple[str, ...] = ("crop",)
    mask: tuple[int, int, int, int] | None = None
    color: str = "bgr"
    resize_in: str = "linear"
    resize_out: str = "linear"
    provider: str = "auto"
    # Accelerators (docs/gpu.md): buffers bound once per lane, the device, cuDNN, memory, TensorRT.
    io_binding: bool | None = None  # None ("auto"): on for an accelerator
    device_id: int = 0
    cudnn_conv_algo_search: str = "heuristic"
    gpu_memory_limit: int | None = None  # bytes; None: ONNX Runtime's default (no limit)
    fp16: bool = False  # TensorRT builds float16 kernels where it can
    cache: Path | None = None  # TensorRT engines and timing caches; None: the user's cache folder
    trt_batches: tuple[int, int, int] | None = None  # TensorRT profile [min, opt, max]; None: [1, batch, batch]

    @property
    def window(self) -> int:
        """Side of the square the model sees and predicts: ``crop - 2 * border``."""
        return self.crop - 2 * self.border

    @property
    def image_channels(self) -> int:
        """Channel count of the model's image input: three per input group."""
        return 3 * len(self.inputs)


@dataclass(frozen=True)
class CompositeSpec:
    """How a prediction is pasted back into the full frame."""

    blend: str = "hard"
    feather: int = 0


@dataclass(frozen=True)
class OutputSpec:
    """Where finished frames go."""

    frames: Path | None = None
    format: str = "png"
    quality: int = 95
    video: Path | None = None
    fps: Fraction | None = None
    audio: Path | None = None
    crf: int = 18
    preset: str = "veryfast"


@dataclass(frozen=True)
class RunSpec:
    """How the processor runs: sizes of batches, pools and the cache."""

    batch: int | None = None  # None: from the provider (composer.rendering.layout.run_batch)
    workers: int | None = None  # None: the usable cores (composer.config.defaults.run_workers)
    chunk: int | None = None  # None: chosen from available memory
    memory_fraction: float = 0.5
    memory_budget: int | None = None  # bytes; overrides memory_fraction when set
    loop: str = "pingpong"
    lanes: int | None = None  # model sessions running batches side by side; None: from the provider and cores
    threads: int | None = None  # intra-op threads per lane; None: the usable cores shared among the lanes
    encoders: int | None = None  # video segments encoded side by side; None: composer.config.defaults.default_encoders
    mode: str = "auto"  # "segments", "pipeline" or "auto" (composer.config.defaults.segment_mode)
    cluster: str | None = None  # a Dask scheduler (tcp://host:port) or local:N; None: this process renders


@dataclass(frozen=True)
class Job:
    """A validated job. Build it with :func:`load_job` or :func:`job_from_dict`."""

    path: Path
    template: TemplateSpec
    model: ModelSpec
    features: FeaturesSpec | None = None
    composite: CompositeSpec = field(default_factory=CompositeSpec)
    output: OutputSpec = field(default_factory=OutputSpec)
    run: RunSpec = field(default_factory=RunSpec)

    def with_run(self, **changes: Any) -> Job:
        """A copy of the job with some ``[run]`` settings changed."""
        return replace(self, run=replace(self.run, **changes))


def job_from_dict(raw: Mapping[str, Any], path: Path) -> Job:
    """Validate a parsed job table; relative paths resolve against ``path``'s folder."""
    for name in raw:
        if name not in SCHEMA:
            raise JobError(f"job: unknown section [{name}] (known: {', '.join(SCHEMA)})")
    base = path.parent
    template = checked_section(raw, "template", base)
    model = checked_section(raw, "model", base)
    assert template is not None and model is not None
    sources = [template[k] for k in ("video", "frames") if k in template]
    if len(sources) != 1:
        raise JobError("job key template.video: give exactly one of template.video or template.frames")
    if 2 * model.get("border", 0) >= model["crop"]:
        raise fail("model.border", f"2 * border must be smaller than crop ({model['crop']})")
    window = model["crop"] - 2 * model.get("border", 0)
    x, y, w, h = model.get("mask") or (0, 0, 0, 0)
    if x + w > window or y + h > window:
        raise fail("model.mask", f"[{x}, {y}, {w}, {h}] reaches outside the {window} x {window} model window "
                                 "(crop - 2 * border)")
    features = checked_section(raw, "features", base)
    if features is not None:
        check_audio_features(features)
    composite = checked_section(raw, "composite", base) or {}
    output = checked_section(raw, "output", base) or {}
    run = checked_section(raw, "run", base) or {}
    if features is not None and "audio" in features and "audio" not in output:
        output["audio"] = features["audio"]  # the speech the features come from is the video's sound
    if composite.get("blend") == "feather" and composite.get("feather", 0) == 0:
        raise fail("composite.feather", "must be > 0 when composite.blend = \"feather\"")
    _check_threads_in_all(run)
    profile, batch = model.get("trt_batches"), run.get("batch")
    if profile is not None and batch is not None and not profile[0] <= batch <= profile[2]:
        raise fail("model.trt_batches", f"{list(profile)} does not take run.batch = {batch}")
    return Job(
        path=path,
        template=TemplateSpec(source=sources[0], rects=template["rects"]),
        model=ModelSpec(**model),
        features=FeaturesSpec(**features) if features is not None else None,
        composite=CompositeSpec(**composite),
        output=OutputSpec(**output),
        run=RunSpec(**run),
    )


def features_spec(table: Mapping[str, Any], base: Path) -> FeaturesSpec:
    """A ``[features]`` table checked as in a job file (relative paths against ``base``)."""
    values = checked_section({"features": table}, "features", base)
    assert values is not None
    check_audio_features(values)
    return FeaturesSpec(**values)


def _parse_toml(text: str, where: str) -> dict[str, Any]:
    """tomllib.loads, after :func:`~composer.config.limits.check_nesting` (tomllib recurses once per level).

    Raises:
        JobError: the text nests too deep, or holds an integer of more than 4300 digits.
        tomllib.TOMLDecodeError: the text is not TOML.
    """
    check_nesting(text, where)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise
    except ValueError as exc:  # Python refuses to read an integer of more than 4300 digits
        raise JobError(f"{where}: not valid TOML: {str(exc).split(';')[0]}") from None


def _check_threads_in_all(run: Mapping[str, Any]) -> None:
    """Each thread count is bounded alone; their products must not start 256 x 256 threads either."""
    product = (run.get("lanes") or 1) * (run.get("threads") or 1)
    if product > MAX_THREADS_IN_ALL:
        raise fail("run.threads", f"lanes x threads is {product}; at most {MAX_THREADS_IN_ALL} threads in all")


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split ``section.key=value``; the value is read as TOML when it parses as one, else as a string."""
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise JobError(f"--set {shown(text)}: expected section.key=value")
    if f"{section}.{key}" in PATH_KEYS:
        return section, key, value.strip()  # a folder named 2024 is a path, not a number
    try:
        parsed = _parse_toml(f"v = {value}", f"--set {section}.{key}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return section, key, parsed


def load_job(path: Path, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Job:
    """Read, merge command-line overrides into, and validate a job file.

    Args:
        path: the TOML job file.
        overrides: ``{section: {key: value}}`` applied over the file; relative paths among them resolve
            against the current directory, as a user typing them expects.

    Raises:
        JobError: the file is missing, not TOML, or a key is unknown, missing or of the wrong type.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_JOB_BYTES + 1)  # a device such as /dev/zero never ends
        if len(data) > MAX_JOB_BYTES:
            raise JobError(f"{path}: a job file is at most {MAX_JOB_BYTES // 2**10} KiB; is this a job file?")
        raw = _parse_toml(data.decode("utf-8"), str(path))
    except FileNotFoundError:
        raise JobError(f"{path}: no such job file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JobError(f"{path}: cannot read job file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise JobError(f"{path}: not valid TOML: {exc}") from None
    for section, values in (overrides or {}).items():
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise JobError(f"job key {section}: expected a table [{section}]")
        for key, value in values.items():
            known = SCHEMA.get(section, {}).get(key)
            if value == "" and known is not None and known[0] not in SWITCHES:
                table.pop(key, None)  # `--set template.video=` clears the key, for another to take its place
                continue
            if f"{section}.{key}" in PATH_KEYS and isinstance(value, str) and value:
                # absolute, keeping a trailing slash for the check of a file's name to see
                value = str(Path(value).expanduser().absolute()) + ("/" if value.endswith(("/", os.sep)) else "")
            table[key] = value
    return job_from_dict(raw, path.absolute())
