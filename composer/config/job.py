"""The job file: loaded, validated and resolved once into frozen objects (docs/design.md section 1).

Every key is declared once in ``_SCHEMA`` with its type, default and check; unknown keys and wrong types are
rejected with a message that names ``section.key``. Paths resolve against the job file's folder, or against
the current directory when they come from the command line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from composer.errors import JobError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

INTERPOLATIONS = ("linear", "area", "cubic", "nearest")
PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")
LOOPS = ("pingpong", "repeat", "once")
MODES = ("auto", "segments", "pipeline")
INPUT_GROUPS = ("crop", "masked")


@dataclass(frozen=True)
class TemplateSpec:
    """Where the full frames and their rectangles come from."""

    source: Path
    rects: Path


@dataclass(frozen=True)
class FeaturesSpec:
    """Per-output-frame conditioning (one row per output frame)."""

    path: Path
    window: int = 8


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

    @property
    def window(self) -> int:
        """Side of the square the model sees and predicts: ``crop - 2 * border``."""
        return self.crop - 2 * self.border


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

    batch: int | None = None  # None: from the provider (composer.inputs.plan.run_batch)
    workers: int | None = None  # None: the usable cores (composer.inputs.plan.run_workers)
    chunk: int | None = None  # None: chosen from available memory
    memory_fraction: float = 0.5
    memory_budget: int | None = None  # bytes; overrides memory_fraction when set
    loop: str = "pingpong"
    lanes: int | None = None  # model sessions running batches side by side; None: from the provider and cores
    threads: int | None = None  # intra-op threads per lane; None: the usable cores shared among the lanes
    encoders: int | None = None  # video segments encoded side by side; None: two (one on one core)
    encoder_threads: int | None = None  # x264 threads per encoder; 0: x264's own choice; None: see encoder_layout
    mode: str = "auto"  # "segments", "pipeline" or "auto" (composer.inputs.plan.segment_mode)


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


# --- value checks -----------------------------------------------------------------------------------------

Check = Callable[[str, Any, Path], Any]


def _fail(key: str, message: str) -> JobError:
    return JobError(f"job key {key}: {message}")


def _type_name(value: Any) -> str:
    return type(value).__name__


def _int(minimum: int | None = None) -> Check:
    def check(key: str, value: Any, base: Path) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, f"expected an integer, got {_type_name(value)} {value!r}")
        if minimum is not None and value < minimum:
            raise _fail(key, f"must be >= {minimum}, got {value}")
        return value

    return check


def _choice(options: Iterable[str]) -> Check:
    options = tuple(options)

    def check(key: str, value: Any, base: Path) -> str:
        if not isinstance(value, str) or value not in options:
            raise _fail(key, f"expected one of {', '.join(options)}; got {value!r}")
        return value

    return check


def _optional_path(key: str, value: Any, base: Path) -> Path | None:
    # An empty string switches an optional output off, e.g. `--set output.video=`.
    return None if value == "" else _path(key, value, base)


def _path(key: str, value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(key, f"expected a path (string), got {_type_name(value)} {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def _fraction_01(key: str, value: Any, base: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise _fail(key, f"expected a number in (0, 1], got {value!r}")
    return float(value)


def _fps(key: str, value: Any, base: Path) -> Fraction:
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, float):
            fps = Fraction(value).limit_denominator(1001)
        elif isinstance(value, (int, str)):
            fps = Fraction(str(value).strip())
        else:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        raise _fail(key, f"expected a frame rate such as 25 or \"30000/1001\", got {value!r}") from None
    if fps <= 0:
        raise _fail(key, f"must be positive, got {value!r}")
    return fps


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(|b|kb|mb|gb|tb|kib|mib|gib|tib)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes in a size such as ``"1GB"`` (10**9), ``"512MiB"`` (2**29) or ``"123456"``."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_frame_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` as (1280, 720); both even and at least 64, as the demo and benchmarks need.

    Raises:
        ValueError: saying what is wrong with ``text``.
    """
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}") from None
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and at least 64, got {text!r}")
    return width, height


def _bytes(key: str, value: Any, base: Path) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        size = value if isinstance(value, int) else parse_size(str(value))
    except ValueError:
        raise _fail(key, f"expected a size such as \"1GB\" or \"512MiB\", got {value!r}") from None
    if size <= 0:
        raise _fail(key, f"must be positive, got {value!r}")
    return size


def _auto_or(check: Check) -> Check:
    def wrapped(key: str, value: Any, base: Path) -> Any:
        return None if value == "auto" else check(key, value, base)

    return wrapped


def _inputs(key: str, value: Any, base: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(v in INPUT_GROUPS for v in value):
        raise _fail(key, f"expected a non-empty list of {' / '.join(INPUT_GROUPS)}, got {value!r}")
    return tuple(value)


def _mask(key: str, value: Any, base: Path) -> tuple[int, int, int, int]:
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or value[2] <= 0
        or value[3] <= 0
        or min(value[:2]) < 0
    ):
        raise _fail(key, f"expected [x, y, w, h] with x, y >= 0 and w, h > 0, got {value!r}")
    return (value[0], value[1], value[2], value[3])


def _string(key: str, value: Any, base: Path) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(key, f"expected a string, got {_type_name(value)} {value!r}")
    return value


# section -> key -> (check, required)
_SCHEMA: dict[str, dict[str, tuple[Check, bool]]] = {
    "template": {"video": (_path, False), "frames": (_path, False), "rects": (_path, True)},
    "features": {"path": (_path, True), "window": (_int(1), False)},
    "model": {
        "path": (_path, True),
        "crop": (_int(1), True),
        "border": (_int(0), False),
        "inputs": (_inputs, False),
        "mask": (_mask, False),
        "color": (_choice(("bgr", "rgb")), False),
        "resize_in": (_choice(INTERPOLATIONS), False),
        "resize_out": (_choice(INTERPOLATIONS), False),
        "provider": (_choice(PROVIDERS), False),
    },
    "composite": {"blend": (_choice(("hard", "feather")), False), "feather": (_int(0), False)},
    "output": {
        "frames": (_optional_path, False),
        "format": (_choice(("png", "jpg")), False),
        "quality": (_int(0), False),
        "video": (_optional_path, False),
        "fps": (_fps, False),
        "audio": (_optional_path, False),
        "crf": (_int(0), False),
        "preset": (_string, False),
    },
    "run": {
        "batch": (_auto_or(_int(1)), False),
        "workers": (_auto_or(_int(1)), False),
        "chunk": (_auto_or(_int(1)), False),
        "memory_fraction": (_fraction_01, False),
        "memory_budget": (_bytes, False),
        "loop": (_choice(LOOPS), False),
        "lanes": (_auto_or(_int(1)), False),
        "threads": (_auto_or(_int(1)), False),
        "encoders": (_auto_or(_int(1)), False),
        "encoder_threads": (_auto_or(_int(0)), False),
        "mode": (_choice(MODES), False),
    },
}
_REQUIRED_SECTIONS = ("template", "model")
PATH_KEYS = frozenset(
    f"{section}.{key}"
    for section, keys in _SCHEMA.items()
    for key, (check, _) in keys.items()
    if check in (_path, _optional_path)
)


def _section(raw: Mapping[str, Any], name: str, base: Path) -> dict[str, Any] | None:
    if name not in raw:
        if name in _REQUIRED_SECTIONS:
            raise JobError(f"job: missing section [{name}]")
        return None
    table = raw[name]
    if not isinstance(table, Mapping):
        raise JobError(f"job key {name}: expected a table [{name}], got {_type_name(table)}")
    schema = _SCHEMA[name]
    for key in table:
        if key not in schema:
            raise _fail(f"{name}.{key}", f"unknown key (known: {', '.join(schema)})")
    values = {}
    for key, (check, required) in schema.items():
        if key in table:
            values[key] = check(f"{name}.{key}", table[key], base)
        elif required:
            raise _fail(f"{name}.{key}", "missing")
    return values


def job_from_dict(raw: Mapping[str, Any], path: Path) -> Job:
    """Validate a parsed job table; relative paths resolve against ``path``'s folder."""
    for name in raw:
        if name not in _SCHEMA:
            raise JobError(f"job: unknown section [{name}] (known: {', '.join(_SCHEMA)})")
    base = path.parent
    template = _section(raw, "template", base)
    model = _section(raw, "model", base)
    assert template is not None and model is not None
    sources = [template[k] for k in ("video", "frames") if k in template]
    if len(sources) != 1:
        raise JobError("job key template.video: give exactly one of template.video or template.frames")
    if 2 * model.get("border", 0) >= model["crop"]:
        raise _fail("model.border", f"2 * border must be smaller than crop ({model['crop']})")
    features = _section(raw, "features", base)
    composite = _section(raw, "composite", base) or {}
    output = _section(raw, "output", base) or {}
    run = _section(raw, "run", base) or {}
    if "quality" in output and output["quality"] > 100:
        raise _fail("output.quality", f"must be <= 100, got {output['quality']}")
    if composite.get("blend") == "feather" and composite.get("feather", 0) == 0:
        raise _fail("composite.feather", "must be > 0 when composite.blend = \"feather\"")
    return Job(
        path=path,
        template=TemplateSpec(source=sources[0], rects=template["rects"]),
        model=ModelSpec(**model),
        features=FeaturesSpec(**features) if features is not None else None,
        composite=CompositeSpec(**composite),
        output=OutputSpec(**output),
        run=RunSpec(**run),
    )


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split ``section.key=value``; the value is read as TOML when it parses as one, else as a string."""
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise JobError(f"--set {text!r}: expected section.key=value")
    if f"{section}.{key}" in PATH_KEYS:
        return section, key, value.strip()  # a folder named 2024 is a path, not a number
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
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
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
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
            if f"{section}.{key}" in PATH_KEYS and isinstance(value, str) and value:
                value = str(Path(value).expanduser().absolute())
            table[key] = value
    return job_from_dict(raw, path.absolute())
