"""The content of an input file or folder, as SHA-256: what resume and the features cache compare (a file's digest
is :func:`composer.runtime.digest.file_digest`, a model's :func:`composer.model.signature.model_digest`)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from composer.inputs.sources import IMAGE_SUFFIXES
from composer.model.signature import model_digest
from composer.runtime.digest import file_digest

__all__ = ["content_digest", "file_digest", "remembered_digests"]

# Inside remembered_digests(): (file, model, its device, inode, size and times) -> its digest.
_remembered: ContextVar[dict[tuple[object, ...], str] | None] = ContextVar("remembered digests", default=None)


@contextlib.contextmanager
def remembered_digests() -> Iterator[None]:
    """Within the block (one render), a file whose size and times have not changed is digested once.

    A render reads its audio for the features cache's key, and again as the video's soundtrack in the resume
    fingerprint; its audio encoder for the key and the fingerprint. Each is a whole read (and, for a model, a
    parse of the ONNX file): seconds for an hour of audio and a large encoder. Folders are digested every time
    (a folder's times do not follow its files' content).
    """
    token = _remembered.set({})
    try:
        yield
    finally:
        _remembered.reset(token)


def content_digest(path: Path, model: bool = False) -> str:
    """The content of an input: a file's bytes, a template folder's images (names and bytes), and for a
    ``model`` its external data files too; ``"missing"`` for a path that is neither file nor folder."""
    memo = _remembered.get()
    key = _file_key(path, model) if memo is not None else None
    if memo is None or key is None:
        return _digest(path, model)
    if key not in memo:
        memo[key] = _digest(path, model)
    return memo[key]


def _file_key(path: Path, model: bool) -> tuple[object, ...] | None:
    """What identifies a file's content without reading it; None for a folder or a missing path."""
    try:
        found = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(found.st_mode):
        return None
    return (model, found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def _digest(path: Path, model: bool) -> str:
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
