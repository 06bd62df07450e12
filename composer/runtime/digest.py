"""A file's content as SHA-256: what resume, the features cache and TensorRT's engine cache compare."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_digest"]

_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks.

    Every byte is read, because it is cheap next to a render: 0.11 s per 100 MB on the development machine (page cache
    warm; BLAKE2b took 0.13 s, this CPU having SHA instructions): milliseconds for inputs of a few MB, against
    seconds to render them; a render decodes its template and loads its model whole anyway. Sampling the content
    would save a fraction of a percent and let an edit between the samples through.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
