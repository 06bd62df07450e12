"""The frame step: the work on one output frame (docs/design.md section 3), written once.

The reference loop, both renderers and the profile's stage measurement call these and nothing else, so their
frames are the same bit for bit. The work is cut where the renderers need to cut it: each frame's model input is
written into a row of a batch (:meth:`FrameStep.prepare`), the model runs on whole batches
(:meth:`FrameStep.infer`), and each prediction is then pasted into its frame (:meth:`FrameStep.paste`), which is
saved as an image and converted for the video encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from composer.config.job import ModelSpec
from composer.errors import StageError
from composer.inputs.features import feature_window
from composer.inputs.plan import Plan
from composer.model.session import Model, NonFiniteOutput
from composer.output.writers import ImageFolderSink, convert_frame
from composer.rendering.composite import composite
from composer.rendering.prepare import crop_region, fill_image

Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class ModelInputs:
    """A batch's model inputs, reused from batch to batch."""

    images: np.ndarray  # [batch, channels, window, window] float32
    features: np.ndarray | None  # [batch, *feature_shape] float32

    @classmethod
    def allocate(cls, spec: ModelSpec, model: Model, batch: int) -> ModelInputs:
        images = np.zeros((batch, spec.image_channels, spec.window, spec.window), np.float32)
        shape = model.inputs.feature_shape
        return cls(images, np.zeros((batch, *shape), np.float32) if shape is not None else None)


class FrameStep:
    """The frame step of one plan's frames (its model section, composite section and features).

    ``windows``: output frame ``i``'s window of feature rows, where the rows are not the plan's array (a live run
    reads them as they arrive); by default the plan's :func:`~composer.inputs.features.feature_window`.
    """

    def __init__(self, plan: Plan, windows: Callable[[int], np.ndarray] | None = None) -> None:
        self.spec, self.blend = plan.job.model, plan.job.composite
        if windows is None and plan.features is not None:
            features, window = plan.features, plan.job.features.window if plan.job.features is not None else 0
            windows = lambda i: feature_window(features, i, window)  # noqa: E731
        self.windows = windows

    def crop(self, frame: np.ndarray, rect: Rect, out: np.ndarray | None = None) -> np.ndarray:
        """3.3: the rectangle of ``frame`` resized to the crop (the cache keeps one per template frame)."""
        return crop_region(frame, rect, self.spec, out)

    def prepare(self, i: int, crop: np.ndarray, inputs: ModelInputs, row: int) -> None:
        """3.4-3.6: output frame ``i``'s model input from its ``crop``, in row ``row`` of ``inputs``."""
        fill_image(crop, self.spec, inputs.images[row])
        if inputs.features is not None and self.windows is not None:
            inputs.features[row] = self.windows(i).reshape(inputs.features.shape[1:])

    @staticmethod
    def infer(model: Model, inputs: ModelInputs, frames: Sequence[int]) -> np.ndarray:
        """3.7: the predictions for output ``frames``, one per row of ``inputs`` in order.

        Raises:
            StageError: the model failed; it names the frame whose prediction holds NaN or inf, else the batch's
                first and last frames.
        """
        count, features = len(frames), inputs.features
        try:
            return model.run(inputs.images[:count], None if features is None else features[:count])
        except Exception as exc:
            if isinstance(exc, NonFiniteOutput) and 0 <= exc.sample < count:
                raise StageError("infer", f"frame {frames[exc.sample]}", exc) from exc
            raise StageError("infer", f"frames {frames[0]}-{frames[-1]}", exc) from exc

    def paste(self, frame: np.ndarray, crop: np.ndarray, prediction: np.ndarray, rect: Rect,
              out: np.ndarray | None = None) -> np.ndarray:
        """3.8-3.9: ``frame`` with ``prediction`` pasted into ``rect`` (into ``out`` where given)."""
        return composite(frame, crop, prediction, rect, self.spec, self.blend, out=out)

    @staticmethod
    def save(i: int, frame: np.ndarray, images: ImageFolderSink | None) -> None:
        """Output frame ``i`` as a numbered image, where the job writes images."""
        if images is not None:
            images.write(i, frame)

    @staticmethod
    def convert(frame: np.ndarray, width: int, height: int, out: np.ndarray | None = None) -> np.ndarray:
        """The finished frame as the video encoder takes it (4:2:0), into ``out`` (a new buffer when None)."""
        return convert_frame(frame, width, height, out)
