"""How far a second model's frames are from the job's own: a float16 copy checked against its float32 original
before it is trusted (docs/gpu.md).

The same output frames are rendered with both models by the one per-frame step the renderers use
(:class:`composer.rendering.step.FrameStep`), on the job's provider (on the CPU, ONNX Runtime casts around the
operators it has no float16 kernel for), and compared as the 8-bit images a render writes: the PSNR of the pasted
rectangle, where the models differ, and of the whole frame, and the largest difference of one channel of one
pixel in levels of 0-255.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from composer.config.job import Job
from composer.errors import JobError
from composer.inputs.plan import Plan, open_plan
from composer.rendering.step import FrameStep, ModelInputs

DEFAULT_FRAMES = 25
DEFAULT_MIN_PSNR = 40.0
# Identical images have an infinite PSNR; JSON has no infinity, so the figure is capped here.
PSNR_CAP = 100.0


def psnr(mse: float) -> float:
    """PSNR in dB of 8-bit images whose mean squared difference is ``mse``, at most :data:`PSNR_CAP`."""
    return PSNR_CAP if mse <= 0 else min(PSNR_CAP, 10 * math.log10(255.0**2 / mse))


@dataclass(frozen=True)
class FrameDifference:
    """One output frame rendered with both models."""

    frame: int
    region_mse: float  # the pasted rectangle
    frame_mse: float  # the whole frame
    max_abs_diff: int  # levels, 0-255

    def as_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "psnr_db": round(psnr(self.region_mse), 3),
                "psnr_frame_db": round(psnr(self.frame_mse), 3), "max_abs_diff": self.max_abs_diff}


@dataclass(frozen=True)
class Precision:
    """Both models' frames compared; the verdict is that every frame's pasted region reaches ``min_psnr``."""

    model: Path
    against: Path
    frames: tuple[FrameDifference, ...]
    min_psnr: float

    @property
    def psnr_db(self) -> float:
        """Over every frame's pasted region: from their mean squared difference."""
        return psnr(float(np.mean([f.region_mse for f in self.frames])))

    @property
    def psnr_frame_db(self) -> float:
        return psnr(float(np.mean([f.frame_mse for f in self.frames])))

    @property
    def max_abs_diff(self) -> int:
        return max(f.max_abs_diff for f in self.frames)

    @property
    def worst_db(self) -> float:
        return min(psnr(f.region_mse) for f in self.frames)

    @property
    def ok(self) -> bool:
        return self.worst_db >= self.min_psnr

    def as_dict(self) -> dict[str, Any]:
        return {"model": str(self.model), "against": str(self.against), "psnr_db": round(self.psnr_db, 3),
                "psnr_frame_db": round(self.psnr_frame_db, 3), "max_abs_diff": self.max_abs_diff,
                "worst_psnr_db": round(self.worst_db, 3), "min_psnr_db": self.min_psnr, "ok": self.ok,
                "frames": [f.as_dict() for f in self.frames]}

    def text(self) -> str:
        lines = [f"{'frame':>7}  {'region PSNR':>11}  {'frame PSNR':>10}  {'max diff':>8}"]
        lines += [f"{f.frame:>7}  {psnr(f.region_mse):>8.2f} dB  {psnr(f.frame_mse):>7.2f} dB  {f.max_abs_diff:>8}"
                  for f in self.frames]
        verdict = "ok" if self.ok else "FAILS"
        lines.append(f"{self.against.name} against {self.model.name}, {len(self.frames)} frames: region "
                     f"{self.psnr_db:.2f} dB, whole frame {self.psnr_frame_db:.2f} dB, max abs diff "
                     f"{self.max_abs_diff} (0-255); worst frame {self.worst_db:.2f} dB "
                     f"{'>=' if self.ok else '<'} {self.min_psnr:g} dB: {verdict}")
        return "\n".join(lines)


def chosen_frames(plan: Plan, count: int) -> list[int]:
    """``count`` output frames with a rectangle, spread evenly over the output (all of them if fewer)."""
    painted = [i for i in range(plan.count) if plan.rects.get(int(plan.schedule[i])) is not None]
    if len(painted) <= count:
        return painted
    picks = np.linspace(0, len(painted) - 1, count).round().astype(int)
    return [painted[k] for k in sorted(set(picks.tolist()))]


def compare_models(job: Job, against: Path, frames: int = DEFAULT_FRAMES,
                   min_psnr: float = DEFAULT_MIN_PSNR) -> Precision:
    """Render ``frames`` output frames of ``job`` with its model and with ``against``, and compare them.

    Raises:
        JobError: the job paints no frame (every rectangle is null).
        ComposerError: the job's inputs or either model are bad.
    """
    with open_plan(job) as plan:
        wanted = chosen_frames(plan, frames)
        if not wanted:
            raise JobError(f"{job.template.rects}: no output frame has a rectangle, so nothing to compare")
        mine, other = plan.open_model(), _other_model(plan, against)
        step = FrameStep(plan)
        buffers = [ModelInputs.allocate(job.model, m, 1) for m in (mine, other)]
        needed = {int(plan.schedule[i]) for i in wanted}
        template = {t: frame for t, frame in enumerate(plan.source.frames(0, max(needed) + 1)) if t in needed}
        results = []
        for i in wanted:
            t = int(plan.schedule[i])
            rect = plan.rects.get(t)
            assert rect is not None
            frame = template[t]
            crop = step.crop(frame, rect)
            images = []
            for model, inputs in zip((mine, other), buffers):
                step.prepare(i, crop, inputs, 0)
                images.append(step.paste(frame.copy(), crop, step.infer(model, inputs, [i])[0], rect))
            results.append(_difference(i, images[0], images[1], rect))
    return Precision(job.model.path, Path(against).absolute(), tuple(results), min_psnr)


def _other_model(plan: Plan, against: Path) -> Any:
    spec = dataclasses.replace(plan.job.model, path=against)
    return dataclasses.replace(plan, job=dataclasses.replace(plan.job, model=spec)).open_model()


def _difference(i: int, a: np.ndarray, b: np.ndarray, rect: tuple[int, int, int, int]) -> FrameDifference:
    x1, y1, x2, y2 = rect
    diff = a.astype(np.int16) - b.astype(np.int16)
    square = diff.astype(np.float64) ** 2
    region = square[max(0, y1):y2, max(0, x1):x2]
    return FrameDifference(i, float(region.mean()) if region.size else 0.0, float(square.mean()),
                           int(np.abs(diff).max()))
