"""Feeding rows to a live run in the tests: a feeder thread writing into a pipe at a rate, with pauses."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from composer.config.job import load_job
from composer.live.runner import Live, open_job_model, open_live
from composer.live.stats import LiveStats

FPS = 10  # slow enough that a loaded test machine keeps up with a cheap model


class Feeder:
    """Writes ``rows`` into a pipe, row ``k`` at ``k / rate`` seconds after the start (plus the pauses before it),
    then closes the pipe (unless ``close`` is False)."""

    def __init__(self, rows: np.ndarray, rate: float = FPS, pauses: dict[int, float] | None = None,
                 close: bool = True, tail: bytes = b"") -> None:
        self.rows, self.rate, self.pauses, self.close, self.tail = rows, rate, pauses or {}, close, tail
        self.read_end, self.write_end = os.pipe()
        self.thread = threading.Thread(target=self._feed, daemon=True)

    def _feed(self) -> None:
        start, extra = time.perf_counter(), 0.0
        try:
            for k, row in enumerate(self.rows):
                extra += self.pauses.get(k, 0.0)
                time.sleep(max(0.0, start + k / self.rate + extra - time.perf_counter()))
                os.write(self.write_end, np.ascontiguousarray(row, "<f4").tobytes())
            if self.tail:
                os.write(self.write_end, self.tail)
        except OSError:
            pass  # the run stopped reading
        finally:
            if self.close:
                os.close(self.write_end)

    def __enter__(self) -> Feeder:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.thread.join(timeout=30)
        os.close(self.read_end)
        if not self.close:
            os.close(self.write_end)


def features_of(job_file: Path) -> np.ndarray:
    return np.load(job_file.parent / "features.npy")


def live_run(job_file: Path, output: Path | str, rows: np.ndarray, *, rate: float = FPS,
             pauses: dict[int, float] | None = None, latency: float | None = None,
             open_model: Callable[..., Any] | None = None, tail: bytes = b"",
             check: Callable[[Live], None] | None = None) -> LiveStats:
    """Stream ``rows`` fed at ``rate`` through the job at ``rate`` fps to ``output``; the run's stats."""
    job = load_job(job_file, {"output": {"fps": rate}})
    with open_live(job, latency=latency, open_model=open_model) as live:
        if check is not None:
            check(live)
        with Feeder(rows, rate, pauses, tail=tail) as feeder:
            return live.run(feeder.read_end, str(output))


class SlowModel:
    """The job's model, ``seconds`` slower a call: a model that cannot keep up with the stream."""

    def __init__(self, model: Any, seconds: float) -> None:
        self.model, self.seconds, self.inputs = model, seconds, model.inputs

    def run(self, images: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        time.sleep(self.seconds)
        return self.model.run(images, features)


def slow(seconds: float) -> Callable[..., SlowModel]:
    return lambda job, shape: SlowModel(open_job_model(job, shape), seconds)


def quarters(values: Sequence[float]) -> tuple[list[float], list[float]]:
    n = max(1, len(values) // 4)
    return list(values[:n]), list(values[-n:])
