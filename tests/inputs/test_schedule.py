"""The frame schedule against a direct transcription of docs/design.md section 2."""

from __future__ import annotations

import numpy as np
import pytest

from composer.errors import JobError
from composer.inputs.schedule import period, schedule, template_index


def _design(i: int, frames: int, loop: str) -> int:
    """docs/design.md section 2, written out once more, one output frame at a time."""
    if loop == "repeat":
        return i % frames
    if loop == "once":
        return i
    if frames == 1:
        return 0
    period = 2 * frames - 2
    k = i % period
    return k if k < frames else period - k


@pytest.mark.parametrize(
    ("frames", "loop", "expected"),
    [
        (1, "pingpong", [0, 0, 0, 0, 0]),
        (2, "pingpong", [0, 1, 0, 1, 0, 1, 0, 1]),
        (5, "pingpong", [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0]),
        (1, "repeat", [0, 0, 0, 0, 0]),
        (2, "repeat", [0, 1, 0, 1, 0, 1, 0, 1]),
        (5, "repeat", [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]),
    ],
)
def test_sequences_spelled_out(frames, loop, expected):
    assert schedule(len(expected), frames, loop).tolist() == expected


@pytest.mark.parametrize("loop", ["pingpong", "repeat"])
@pytest.mark.parametrize("frames", [1, 2, 5])
def test_looping_schedules_follow_the_formula(frames, loop):
    count = 3 * frames + 2
    order = schedule(count, frames, loop)
    assert order.dtype == np.int64
    assert order.tolist() == [_design(i, frames, loop) for i in range(count)]


@pytest.mark.parametrize("frames", [1, 2, 5])
def test_once_uses_each_frame_once(frames):
    assert schedule(frames, frames, "once").tolist() == list(range(frames))
    assert schedule(frames - 1, frames, "once").tolist() == list(range(frames - 1))


@pytest.mark.parametrize(("count", "frames"), [(2, 1), (3, 2), (17, 5)])
def test_once_refuses_more_outputs_than_template_frames(count, frames):
    with pytest.raises(JobError) as info:
        schedule(count, frames, "once")
    message = str(info.value)
    assert str(count) in message and f"has {frames}" in message


def test_unknown_loop_and_empty_template_are_job_errors():
    with pytest.raises(JobError, match="bounce"):
        schedule(3, 3, "bounce")
    with pytest.raises(JobError, match="no frames"):
        schedule(3, 0, "repeat")


@pytest.mark.parametrize("loop", ["pingpong", "repeat", "once"])
@pytest.mark.parametrize("frames", [1, 2, 5])
def test_template_index_agrees_with_schedule(frames, loop):
    count = frames if loop == "once" else 3 * frames + 2
    order = schedule(count, frames, loop)
    indices = [template_index(i, frames, loop) for i in range(count)]
    assert indices == order.tolist()
    assert all(type(t) is int for t in indices)


@pytest.mark.parametrize("loop", ["pingpong", "repeat"])
@pytest.mark.parametrize("frames", [1, 2, 5])
def test_the_schedule_repeats_every_period(loop, frames):
    cycle = period(frames, loop)
    assert cycle is not None
    full = schedule(4 * cycle + 3, frames, loop)
    assert np.array_equal(full, schedule(cycle, frames, loop)[np.arange(len(full)) % cycle])


def test_once_has_no_period():
    assert period(5, "once") is None
