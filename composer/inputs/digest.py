"""The content of an input file or folder, as SHA-256: what resume and the features cache compare (a file's digest
is :func:`composer.runtime.digest.file_digest`, a model's :func:`composer.model.signature.model_digest`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from composer.inputs.sources import IMAGE_SUFFIXES
from composer.model.signature import model_digest
from composer.runtime.digest import file_digest

__all__ = ["content_digest", "file_digest"]


def content_digest(path: Path, model: bool = False) -> str:
    """The content of an input: a file's bytes, a template folder's images (names and bytes), and for a
    ``model`` its external data files too; ``"missing"`` for a path that is neither file nor folder."""
    if path.is_dir():
        digest = hashlib.sha256()
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if not entry.name.startswith(".") and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES \
                    and entry.is_file():
                digest.update(f"{entry.name}\0{file_digest(Path(entry.path))}\0".encode())
        return digest.hexdigest()
    if not path.is_file():
        return "missing"
    return model_digest(path) if model else file_digest(path)
