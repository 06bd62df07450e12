"""An ONNX audio encoder (hubert, wenet, ...) run over a stream of samples in chunks (docs/design.md 1.1).

The encoder's first input takes mono float32 PCM in [-1, 1] as ``[1, S]``; its first output is ``[1, F, D]`` or
``[F, D]``: ``F`` rows of ``D`` values, ``rows_per_second`` rows a second of audio. Audio up to
``chunk_seconds`` long goes in with one call. Longer audio goes in chunks of ``chunk_seconds``, each with
``overlap_seconds`` of the audio around it as context whose rows are dropped, so memory holds one chunk and its
context whatever the length of the audio.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from composer.config.features import FeaturesSpec
from composer.errors import JobError, ModelError
from composer.model.session import check_external_data, session_options

__all__ = ["AudioEncoder", "encode_rows"]


class AudioEncoder:
    """An ONNX Runtime session of an audio encoder, on the CPU, checked against the contract above.

    Raises:
        ModelError: the file is missing, cannot be loaded, or its first input or output has the wrong rank or type.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such encoder file")
        check_external_data(self.path)
        options = session_options()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: cannot load the encoder: {first}") from None
        first_in, first_out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input, self.output = first_in.name, first_out.name
        problem = input_problem(list(first_in.shape), first_in.type) or output_problem(list(first_out.shape))
        if problem:
            raise ModelError(f"{self.path}: {problem}")

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Rows ``[F, D]`` (float32) of ``samples`` (float32 ``[S]``).

        Raises:
            ModelError: the encoder failed, or returned something that is not rows of finite numbers.
        """
        try:
            out = self.session.run([self.output], {self.input: samples[None, :]})[0]
        except Exception as exc:  # onnxruntime raises its own untyped errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: the encoder failed on {len(samples)} samples: {first}") from None
        out = np.asarray(out)
        if out.ndim == 3 and out.shape[0] == 1:
            out = out[0]
        if out.ndim != 2 or out.dtype.kind != "f":
            raise ModelError(f"{self.path}: output '{self.output}' is {out.dtype} {list(out.shape)}; expected float "
                             "[1, F, D] or [F, D]")
        if not np.isfinite(out).all():
            raise ModelError(f"{self.path}: output '{self.output}' holds NaN or inf for {len(samples)} samples")
        return out.astype(np.float32, copy=False)


def input_problem(shape: list[object], type_name: str) -> str | None:
    """What is wrong with an encoder's first input for ``[1, S]`` float32 PCM, or None."""
    if type_name != "tensor(float)":
        return f"first input is {type_name}; the encoder takes float32 PCM [1, S]"
    if len(shape) != 2 or (shape[0] not in (1, None) and not isinstance(shape[0], str)):
        return f"first input has shape {shape}; the encoder takes mono PCM [1, S]"
    return None


def output_problem(shape: list[object]) -> str | None:
    """What is wrong with an encoder's first output for ``[1, F, D]`` or ``[F, D]``, or None."""
    if len(shape) not in (2, 3):
        return f"first output has shape {shape}; the encoder returns rows [1, F, D] or [F, D]"
    return None


def encode_rows(blocks: Iterable[np.ndarray], spec: FeaturesSpec, encoder: AudioEncoder) -> Iterator[np.ndarray]:
    """The encoder's rows for the samples of ``blocks`` (mono float32 at ``spec.sample_rate``), in order.

    Audio of at most ``chunk_seconds`` is one call. Longer audio: chunk ``k`` keeps rows ``k C .. (k+1) C - 1``
    (``C`` rows a chunk) of a call on the samples of rows ``k C - O .. (k+1) C + O - 1`` (``O`` rows of overlap,
    cut at the ends of the audio), dropping the rows of the context.

    Raises:
        JobError: the audio holds no samples, or too few for the encoder to return a row.
        ModelError: the encoder failed.
    """
    hop = spec.hop
    chunk = max(1, round(spec.chunk_seconds * spec.rows_per_second))
    overlap = round(spec.overlap_seconds * spec.rows_per_second)
    buffer = _Buffer(iter(blocks))
    whole = buffer.fill(chunk * hop + 1)  # one sample more than a chunk: is there more than one chunk?
    if whole <= chunk * hop:
        if whole == 0:
            raise JobError(f"{spec.audio}: the audio holds no samples")
        rows = encoder(buffer.take(0, whole))
        if len(rows) == 0:
            raise JobError(f"{spec.audio}: {whole} samples are too short for the encoder to return a row")
        yield rows
        return
    k = 0
    while True:
        first = max(0, (k * chunk - overlap) * hop)
        end = buffer.fill(((k + 1) * chunk + overlap) * hop)
        core = k * chunk * hop
        if core >= end:
            return  # the previous chunk ended with the audio
        rows = encoder(buffer.take(first, end))
        skip = (core - first) // hop
        yield rows[skip : skip + chunk]
        k += 1
        buffer.drop((k * chunk - overlap) * hop)


class _Buffer:
    """Samples of a stream of blocks, from a start index on, filled on demand and dropped when used."""

    def __init__(self, blocks: Iterator[np.ndarray]) -> None:
        self.blocks, self.start = blocks, 0
        self.samples = np.zeros(0, np.float32)
        self.ended = False

    def fill(self, end: int) -> int:
        """Read blocks until sample ``end`` is held or the stream ends; the end of what is held."""
        pending = [self.samples]
        held = self.start + len(self.samples)
        while held < end and not self.ended:
            block = next(self.blocks, None)
            if block is None:
                self.ended = True
                break
            pending.append(block)
            held += len(block)
        if len(pending) > 1:
            self.samples = np.concatenate(pending)
        return min(held, end)

    def take(self, first: int, end: int) -> np.ndarray:
        """Samples ``first .. end - 1`` (held, contiguous)."""
        return np.ascontiguousarray(self.samples[first - self.start : end - self.start])

    def drop(self, first: int) -> None:
        """Forget the samples before ``first``."""
        if first > self.start:
            self.samples = self.samples[first - self.start :].copy()
            self.start = first
