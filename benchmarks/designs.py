"""The designs the seeds describe, rebuilt from their text, and composer's processor, as one kind of function.

Every design is ``design(inputs, save)``: it renders output frames ``0 .. inputs.count - 1`` of the job in
``inputs`` and hands each finished frame to ``save(index, frame)`` (which must use the frame before it
returns: some designs reuse the buffer). The per-frame arithmetic is composer's own (crop, model input,
composite), so every design must produce exactly the reference loop's frames; what differs is what the seeds
are about: where frames come from, what runs on which thread and when.

- :func:`reference`: docs/design.md section 3 as a loop: the template decoded into RAM, then one frame at a time.
- :func:`seek_per_frame`: seed 001's starting point: every frame seeks the template video and reads the
  rectangles file again, then runs the model on one frame and saves synchronously.
- :func:`pipelined`: seed 000's "optimization v1": a reader thread, the model on the main thread, one drawer
  thread that composites and saves, joined by queues of two.
- :func:`pooled`: seed 000's "optimization v2": the same with ``int(os.cpu_count() * 0.8) - 1`` drawers (at
  least one) and queues of ``2 * drawers + 2``.
- :func:`seed001_final`: seed 001's winner: everything cached in RAM first, then batches of 4 through the
  model, the batch composited by 4 threads (``ThreadPoolExecutor.map``), the frames saved one by one on the
  main thread before the next batch starts.
- :func:`processor`: composer's processor (:class:`composer.rendering.pipeline.Pipeline`) with the job's settings.

The seeds read each video frame once because their video is used once; here the template is reused over
the output frames. Where a seed's reader reads sequentially, it keeps what it decoded, so it never decodes
a frame twice (the reference loop holds the template in RAM the same way); only seed 001's baseline, whose
point is reading from disk per frame, seeks for every frame.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from composer.config.job import Job
from composer.inputs.features import feature_window
from composer.inputs.plan import (
    DEFAULT_FPS,
    Plan,
    open_plan,
)
from composer.inputs.rects import Rects, load_rects
from composer.inputs.sources import TemplateSource, open_template
from composer.model.session import Model
from composer.rendering.composite import composite
from composer.rendering.layout import RenderLayout, open_render
from composer.rendering.prepare import crop_region, model_image
from composer.runtime.threads import Supervisor, get, one_opencv_thread, put

__all__ = ["DESIGNS", "Design", "Inputs", "Save", "label", "load_inputs", "pipelined", "pooled", "pooled_drawers",
           "processor", "reference", "seed001_final", "seek_per_frame"]

Save = Callable[[int, np.ndarray], None]


@dataclass(frozen=True)
class Inputs:
    """What every design starts from: the job, its checked rectangles, features and schedule, and the models.

    The seed designs share one session on every usable core, as their scripts run ONNX Runtime; composer's
    processor runs the lanes of its own layout (:func:`composer.rendering.layout.open_render`), loaded here too so
    that no design's time includes loading a model.
    """

    job: Job
    rects: Rects
    features: np.ndarray | None
    schedule: np.ndarray  # template frame of each output frame to render
    model: Model
    template_frames: int
    lanes: tuple[Model, ...]
    layout: RenderLayout  # composer's, as a render of the job chooses it

    @property
    def count(self) -> int:
        return len(self.schedule)

    def window(self, i: int) -> np.ndarray | None:
        """Feature rows of output frame ``i`` with a batch axis, or None without features."""
        if self.features is None or self.job.features is None:
            return None
        return feature_window(self.features, i, self.job.features.window)


Design = Callable[[Inputs, Save], None]


def load_inputs(job: Job, frames: int | None = None) -> Inputs:
    """Check the job's inputs and load its model once, for the first ``frames`` output frames (all if None)."""
    with open_plan(job) as plan:
        model = plan.open_model()
        schedule = plan.schedule if frames is None else plan.schedule[:frames]
        layout, lanes = open_render(plan)  # warmed up, as composer run does before its clock starts
        return Inputs(job, plan.rects, plan.features, np.array(schedule), model, plan.source.count, tuple(lanes),
                      layout)


def _predict(inputs: Inputs, i: int, crop: np.ndarray) -> np.ndarray:
    """One frame through the model (batch 1)."""
    window = inputs.window(i)
    return inputs.model.run(model_image(crop, inputs.job.model)[None], None if window is None else window[None])[0]


def _paste(inputs: Inputs, frame: np.ndarray, crop: np.ndarray, prediction: np.ndarray,
           rect: tuple[int, int, int, int]) -> np.ndarray:
    return composite(frame, crop, prediction, rect, inputs.job.model, inputs.job.composite)


def _open(inputs: Inputs) -> TemplateSource:
    return open_template(inputs.job.template.source)


# --- the designs ------------------------------------------------------------------------------------------


def reference(inputs: Inputs, save: Save) -> None:
    """The reference loop: decode the whole template into RAM, then crop, infer, composite, save per frame."""
    with _open(inputs) as source:
        frames = list(source.frames())
    spec = inputs.job.model
    for i, t in enumerate(inputs.schedule):
        frame, rect = frames[t], inputs.rects.get(int(t))
        if rect is not None:
            crop = crop_region(frame, rect, spec)
            frame = _paste(inputs, frame, crop, _predict(inputs, i, crop), rect)
        save(i, frame)


def _one_frame(source: TemplateSource, t: int) -> np.ndarray:
    frames = source.frames(t, t + 1)
    try:
        return next(frames)
    finally:
        frames.close()


def seek_per_frame(inputs: Inputs, save: Save) -> None:
    """Seed 001's baseline: per output frame, seek the template to its frame and read the rectangles file.

    A seek lands on the keyframe at or before the frame and decodes forward to it, which is what made the
    seed's "compositing" (really its disk reads) cost hundreds of milliseconds. Then the frame is cropped,
    inferred alone, composited and saved before the next one starts.
    """
    spec = inputs.job.model
    with _open(inputs) as source:
        for i, t in enumerate(inputs.schedule):
            t = int(t)
            frame = _one_frame(source, t)
            rect = load_rects(inputs.job.template.rects, inputs.template_frames).get(t)
            if rect is not None:
                crop = crop_region(frame, rect, spec)
                frame = _paste(inputs, frame, crop, _predict(inputs, i, crop), rect)
            save(i, frame)


_DONE = object()


def _reader_drawers(inputs: Inputs, save: Save, drawers: int, depth: int) -> None:
    """Seed 000's shape: reader thread -> main thread (model) -> ``drawers`` threads (composite + save)."""
    supervisor = Supervisor()
    stop = supervisor.stop
    read_q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    draw_q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    spec = inputs.job.model

    def reader() -> None:
        with _open(inputs) as source:
            stream = source.frames()
            decoded: list[np.ndarray] = []  # read once, sequentially; reused frames come from here
            for i, t in enumerate(inputs.schedule):
                while len(decoded) <= t:
                    decoded.append(next(stream))
                put(read_q, (i, decoded[t]), stop)
        put(read_q, _DONE, stop)

    def drawer() -> None:
        while (item := get(draw_q, stop)) is not _DONE:
            i, frame, crop, prediction, rect = item
            if rect is not None:
                frame = _paste(inputs, frame, crop, prediction, rect)
            save(i, frame)

    supervisor.spawn("reader", reader)
    for k in range(drawers):
        supervisor.spawn(f"drawer-{k}", drawer)
    try:
        while (item := get(read_q, stop)) is not _DONE:
            i, frame = item
            t = int(inputs.schedule[i])
            rect = inputs.rects.get(t)
            crop = prediction = None
            if rect is not None:
                crop = crop_region(frame, rect, spec)
                prediction = _predict(inputs, i, crop)
            put(draw_q, (i, frame, crop, prediction, rect), stop)
        for _ in range(drawers):
            put(draw_q, _DONE, stop)
    except BaseException as exc:  # noqa: BLE001 - stops the threads; join re-raises the first error
        supervisor.fail(exc)
    supervisor.join()


def pipelined(inputs: Inputs, save: Save) -> None:
    """Seed 000's pipelined design: 1 reader thread, inference on the main thread, 1 drawer that also saves."""
    _reader_drawers(inputs, save, drawers=1, depth=2)


def pooled_drawers() -> int:
    """Seed 000's drawer count: ``int(os.cpu_count() * 0.8) - 1``, at least one."""
    return max(1, int((os.cpu_count() or 4) * 0.8) - 1)


def pooled(inputs: Inputs, save: Save) -> None:
    """Seed 000's pooled design: 1 reader thread, inference on the main thread, N drawers that also save."""
    drawers = pooled_drawers()
    _reader_drawers(inputs, save, drawers=drawers, depth=2 * drawers + 2)


def seed001_final(inputs: Inputs, save: Save, batch: int = 4, workers: int = 4) -> None:
    """Seed 001's final design: RAM cache, batches of 4, 4 composite threads, synchronous saving.

    The cache (every template frame and its crop) is filled before the first batch. Each batch is stacked
    and inferred, then composited by the pool while the main thread waits, then saved frame by frame on the
    main thread; only then does the next batch start.
    """
    spec = inputs.job.model
    frames: list[np.ndarray] = []
    crops: dict[int, np.ndarray] = {}
    with _open(inputs) as source:
        for t, frame in enumerate(source.frames()):
            frames.append(frame)
            rect = inputs.rects.get(t)
            if rect is not None:
                crops[t] = crop_region(frame, rect, spec)

    def composite_one(job: tuple[int, int, np.ndarray | None]) -> tuple[int, np.ndarray]:
        i, t, prediction = job
        rect = inputs.rects.get(t)
        if rect is None or prediction is None:
            return i, frames[t]
        return i, _paste(inputs, frames[t], crops[t], prediction, rect)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, inputs.count, batch):
            indices = range(start, min(start + batch, inputs.count))
            templates = [int(inputs.schedule[i]) for i in indices]
            modelled = [(i, t) for i, t in zip(indices, templates) if inputs.rects.get(t) is not None]
            predictions: dict[int, np.ndarray] = {}
            if modelled:
                images = np.stack([model_image(crops[t], spec) for _, t in modelled])
                windows = [inputs.window(i) for i, _ in modelled]
                features = None if windows[0] is None else np.stack(windows)  # type: ignore[arg-type]
                out = inputs.model.run(images, features)
                predictions = {i: out[k] for k, (i, _) in enumerate(modelled)}
            jobs = [(i, t, predictions.get(i)) for i, t in zip(indices, templates)]
            for i, frame in pool.map(composite_one, jobs):
                save(i, frame)


class _SaveSink:
    """An image sink for composer's processor that hands each frame to ``save`` (thread-safe if it is)."""

    def __init__(self, save: Save) -> None:
        self._save = save

    def write(self, index: int, frame: np.ndarray) -> None:
        self._save(index, frame)


def processor(inputs: Inputs, save: Save) -> None:
    """composer's processor with the job's ``[run]`` settings, saving through ``save`` from its workers.

    Like the seed designs, it opens the template inside the timed call and takes the checked rectangles,
    features and schedule from ``inputs``, so that no design's time includes checking the job's inputs.
    """
    from composer.output.outputs import Outputs
    from composer.rendering.pipeline import Pipeline
    from composer.rendering.segment_renderer import SegmentRenderer

    layout = inputs.layout
    with one_opencv_thread(), _open(inputs) as source:
        plan = Plan(inputs.job, source, inputs.rects, inputs.features, inputs.schedule, DEFAULT_FPS)
        outputs = Outputs(images=_SaveSink(save), video=None)  # type: ignore[arg-type]
        if layout.segments:
            SegmentRenderer(plan, inputs.lanes, outputs, layout.batch).run()
        else:
            Pipeline(plan, inputs.lanes, outputs, layout).run()


DESIGNS: dict[str, Design] = {
    "composer": processor,
    "reference": reference,
    "seed001-baseline": seek_per_frame,
    "seed000-pipelined": pipelined,
    "seed000-pooled": pooled,
    "seed001-final": seed001_final,
}


def label(name: str, layout: RenderLayout | None = None) -> str:
    """A design's name in a report; composer's names the layout it ran with, where given."""
    if name == "composer":
        return f"composer ({layout.text()})" if layout is not None else "composer"
    return {
        "reference": "reference loop (sequential, RAM)",
        "seed001-baseline": "seed 001 baseline (seek + rects read per frame)",
        "seed000-pipelined": "seed 000 pipelined (1 reader, 1 drawer)",
        "seed000-pooled": f"seed 000 pooled (1 reader, {_drawers(pooled_drawers())})",
        "seed001-final": "seed 001 final (batch 4, 4 composite threads, sync save)",
    }[name]


def _drawers(count: int) -> str:
    return f"{count} drawer" + ("s" if count != 1 else "")
