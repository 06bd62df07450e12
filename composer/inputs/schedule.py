"""The frame schedule: which template frame each output frame uses (docs/design.md section 2)."""

from __future__ import annotations

import numpy as np

from composer.errors import JobError


def template_index(i: int, frames: int, loop: str) -> int:
    """The template frame used by output frame ``i`` of a template of ``frames`` frames."""
    return int(schedule(i + 1, frames, loop)[i])


def period(frames: int, loop: str) -> int | None:
    """Output frames after which the schedule repeats itself (``t(i + period) == t(i)``); None for ``once``,
    which never repeats. A live stream, whose length nobody knows, indexes one period of :func:`schedule`."""
    if loop == "once":
        return None
    if loop == "pingpong" and frames > 1:
        return 2 * frames - 2
    return frames


def schedule(count: int, frames: int, loop: str) -> np.ndarray:
    """Template indices of output frames ``0 .. count-1`` as an int64 array.

    ``pingpong`` runs 0, 1, ..., T-1, T-2, ..., 1, 0, 1, ...; ``repeat`` runs 0 .. T-1 again and again;
    ``once`` uses each template frame once and refuses more output frames than template frames.
    """
    if frames < 1:
        raise JobError("template: no frames")
    out = np.arange(count, dtype=np.int64)
    if loop == "once":
        if count > frames:
            raise JobError(
                f"run.loop = \"once\": {count} output frames need {count} template frames, "
                f"the template has {frames}"
            )
        return out
    if loop == "repeat":
        return out % frames
    if loop == "pingpong":
        cycle = period(frames, loop)
        assert cycle is not None
        k = out % cycle
        return np.where(k < frames, k, cycle - k)
    raise JobError(f"run.loop: unknown loop {loop!r}")
