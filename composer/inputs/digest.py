"""The content of an input file or folder, as SHA-256: what resume and the features cache compare."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from composer.inputs.sources import IMAGE_SUFFIXES

__all__ = ["content_digest", "file_digest"]

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


def _external_data(model: Path) -> list[Path]:
    """The files holding a model's external tensors (checked to lie in its folder when the model is opened)."""
    import onnx

    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception:  # noqa: BLE001 - not ONNX: opening the model reports it
        return []
    tensors = list(proto.graph.initializer)
    for node in proto.graph.node:
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    names = {e.value for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL
             for e in t.external_data if e.key == "location"}
    return [model.parent / name for name in sorted(names)]


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
    files = [path, *(_external_data(path) if model else [])]
    return "+".join(file_digest(f) if f.is_file() else "missing" for f in files)
