"""The cross-key checks of ``[features]``: a ``.npy`` file, or audio and the encoder that turns it into rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from composer.config.checks import fail

__all__ = ["check_audio_features"]


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
    rate, rows = features.get("sample_rate", 16_000), features.get("rows_per_second", 50)
    if rate % rows:
        raise fail("features.rows_per_second", f"{rows} rows a second do not divide features.sample_rate {rate} "
                                               "into a whole number of samples a row")
    hop_seconds = 1 / rows
    if features.get("chunk_seconds", 60.0) < hop_seconds:
        raise fail("features.chunk_seconds", f"must be at least one row ({hop_seconds:g} s)")
