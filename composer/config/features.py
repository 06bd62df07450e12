"""``[features]``: its settings, and the cross-key checks (a ``.npy`` file, or audio and the encoder that turns it
into rows)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.config.checks import fail, shown
from composer.config.limits import MAX_ROW_VALUES

__all__ = ["FeaturesSpec", "check_audio_features", "row_shape"]


@dataclass(frozen=True)
class FeaturesSpec:
    """Per-output-frame conditioning (one row per output frame): a ``.npy`` file at ``path``, or made from
    ``audio`` by the ONNX audio ``encoder`` (docs/design.md 1.1).

    ``row_shape`` states one row's shape where neither gives it: ``composer live`` reads rows from its standard
    input. A job with only ``row_shape`` has no features for ``composer run``.
    """

    path: Path | None = None
    window: int = 8
    row_shape: tuple[int, ...] | None = None
    audio: Path | None = None
    encoder: Path | None = None
    sample_rate: int = 16_000  # the encoder's input rate
    rows_per_second: int = 50  # the encoder's output rows per second of audio
    chunk_seconds: float = 60.0  # audio encoded in one call at most
    overlap_seconds: float = 1.0  # context on each side of a chunk whose rows are dropped

    @property
    def hop(self) -> int:
        """Samples per encoder row: ``sample_rate / rows_per_second`` (checked to be whole)."""
        return self.sample_rate // self.rows_per_second


def check_audio_features(features: Mapping[str, Any]) -> None:
    """``path``, or ``audio`` with ``encoder``, or ``row_shape`` alone (rows that ``composer live`` reads from its
    standard input); the encoder's rows a whole number of samples apart."""
    if "path" in features and "audio" in features:
        raise fail("features.path", "give one of features.path (a .npy file) or features.audio (with "
                                    "features.encoder), not both")
    if "path" not in features and "audio" not in features and "row_shape" not in features:
        raise fail("features.path", "missing: give features.path (a .npy file) or features.audio (with "
                                    "features.encoder), or features.row_shape alone for composer live")
    if "audio" not in features:
        audio_keys = [k for k in ("encoder", "sample_rate", "rows_per_second", "chunk_seconds", "overlap_seconds")
                      if k in features]
        if audio_keys:
            raise fail(f"features.{audio_keys[0]}", "applies to features.audio, not to features.path")
        return
    if "encoder" not in features:
        raise fail("features.encoder", "missing: features.audio needs the ONNX audio encoder that turns it into rows")
    rate = features.get("sample_rate", FeaturesSpec.sample_rate)
    rows = features.get("rows_per_second", FeaturesSpec.rows_per_second)
    if rate % rows:
        raise fail("features.rows_per_second", f"{rows} rows a second do not divide features.sample_rate {rate} "
                                               "into a whole number of samples a row")
    hop_seconds = 1 / rows
    if features.get("chunk_seconds", FeaturesSpec.chunk_seconds) < hop_seconds:
        raise fail("features.chunk_seconds", f"must be at least one row ({hop_seconds:g} s)")


def row_shape(key: str, value: Any, base: Path) -> tuple[int, ...]:
    """A feature row's shape: 1 to 4 sizes, each at least 1, of at most ``MAX_ROW_VALUES`` values in all."""
    if (not isinstance(value, list) or not 1 <= len(value) <= 4
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise fail(key, f"expected a list of 1 to 4 sizes, each at least 1, such as [32, 16], got {shown(value)}")
    if math.prod(value) > MAX_ROW_VALUES:
        raise fail(key, f"{shown(value)} holds {math.prod(value)} values; a row holds at most {MAX_ROW_VALUES}")
    return tuple(value)
