"""Inputs are sacred: the paths a command writes, checked against the paths it reads before it writes anything.

docs/design.md section 9. Every path is resolved first (``~``, symlinks, ``..``, trailing slashes; one that does
not exist yet through its nearest existing parent), then a command is refused, with a
:class:`~composer.errors.JobError` (exit 2) naming both paths, when an output

- is, contains or lies inside one of its inputs (the job file included; a folder input such as the template's
  frames holds everything inside it);
- exists and is not what composer writes there: a device, a FIFO or a socket (``/dev/null`` would be replaced
  by a regular file), a folder where a file goes, a file where the frames folder goes;
- collides with another output: the same path, or one inside the other (a frames folder holds only its
  numbered images);
- is a file named with a trailing slash, or has a name (or a hidden name composer derives from it, such as a
  video's ``.NAME.partial.mp4``) too long for its file system.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from composer.config.job import Job
from composer.errors import JobError
from composer.output.resume import parts_folder
from composer.output.writers import partial_path

__all__ = ["Output", "check_job", "check_paths", "file_output", "job_inputs", "job_outputs", "video_output"]

Place: TypeAlias = tuple[str, str | os.PathLike[str]]  # (the role it goes by in messages, the path as given)
_SEPARATORS = tuple(s for s in (os.sep, os.altsep) if s)
_NAME_MAX = 255  # where the file system does not say
_WHY = "composer never writes over its inputs: choose another output path"
_COLLIDE = "two outputs cannot share a path, and a frames folder holds only its images"


@dataclass(frozen=True)
class Output:
    """A path a command writes.

    Attributes:
        role: what it goes by in messages: ``"output.video"``, ``"--report"``.
        path: the path as given; a ``str`` keeps a trailing slash, which a file's name must not have.
        folder: the output is a folder (the frames), not a file.
        hidden: the names of the hidden files or folders composer writes beside it while it works.
    """

    role: str
    path: str | os.PathLike[str]
    folder: bool = False
    hidden: tuple[str, ...] = ()


def file_output(role: str, path: str | os.PathLike[str], temporary: bool = True) -> Output:
    """A file written whole under the hidden name ``.NAME.tmp`` and renamed into place (a report, a contact
    sheet, a rectangles file), or written directly (``temporary`` False: a trace, a picture)."""
    name = Path(path).name
    return Output(role, path, hidden=(f".{name}.tmp",) if temporary else ())


def video_output(role: str, path: str | os.PathLike[str]) -> Output:
    """An mp4 written in segments: its parts folder and its partial video and audio lie beside it."""
    video = Path(path)
    hidden = (parts_folder(video), partial_path(video), partial_path(video, ".m4a"))
    return Output(role, path, hidden=tuple(p.name for p in hidden))


def job_inputs(job: Job) -> list[Place]:
    """What a job reads: its file, template, rectangles, features, model and audio."""
    template = "template.frames" if Path(job.template.source).is_dir() else "template.video"
    places: list[Place] = [("the job file", job.path), (f"input {template}", job.template.source),
                           ("input template.rects", job.template.rects), ("input model.path", job.model.path)]
    if job.features is not None:
        places += [(f"input features.{key}", path) for key in ("path", "audio", "encoder")
                   if (path := getattr(job.features, key)) is not None]
    if job.output.audio is not None:
        places.append(("input output.audio", job.output.audio))
    return places


def job_outputs(job: Job) -> list[Output]:
    """What a job's render writes: the frames folder and the video."""
    outputs = []
    if job.output.frames is not None:
        outputs.append(Output("output.frames", job.output.frames, folder=True))
    if job.output.video is not None:
        outputs.append(video_output("output.video", job.output.video))
    return outputs


def check_job(job: Job, extra: Sequence[Output] = ()) -> None:
    """Refuse a job whose outputs (and ``extra`` ones, such as ``--trace``) would overwrite an input.

    Raises:
        JobError: see :func:`check_paths`.
    """
    check_paths(job_inputs(job), [*job_outputs(job), *extra])


def check_paths(inputs: Iterable[Place], outputs: Sequence[Output], why: str = _WHY) -> None:
    """Refuse outputs that would destroy an input, replace a special file, collide, or fail late.

    Args:
        inputs: ``(role, path)`` of everything the command reads (and of anything else it must not touch).
        outputs: everything it writes.
        why: what the message says after naming an output and the input it clashes with.

    Raises:
        JobError: one line naming the output and the input (or other output) it clashes with.
    """
    read = [(role, path, _resolve(path)) for role, path in inputs]
    written = [(out, _resolve(out.path)) for out in outputs]
    for out, where in written:
        for role, path, source in read:
            _refuse_overlap(out.role, out.path, where, role, path, source, why)
    for out, where in written:
        _check_kind(out, where)
    for k, (out, where) in enumerate(written):
        for other, there in written[k + 1:]:
            _refuse_overlap(out.role, out.path, where, other.role, other.path, there, _COLLIDE)
    for out, where in written:
        _check_names(out, where)


def _resolve(path: str | os.PathLike[str]) -> Path:
    """``path`` absolute, with ``~``, symlinks and ``..`` resolved; a missing tail is resolved through its nearest
    existing parent (``os.path.realpath`` resolves what exists and keeps the rest)."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def _absolute(path: str | os.PathLike[str]) -> Path:
    """``path`` absolute, with ``~`` expanded, and nothing else resolved."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def _relation(a: Path, b: Path) -> str | None:
    """How ``a`` stands to ``b``: ``"is"``, ``"lies inside"``, ``"contains"``, or None when apart."""
    if a == b:
        return "is"
    if a.is_relative_to(b):
        return "lies inside"
    if b.is_relative_to(a):
        return "contains"
    return None


def _same_file(a: Path, b: Path) -> bool:
    """Whether two existing paths are one file: a hard link, or a folder mounted twice, which writing one of
    them in place (a trace is written so) would overwrite."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_overlap(role: str, path: str | os.PathLike[str], where: Path, other: str,
                    other_path: str | os.PathLike[str], there: Path, why: str) -> None:
    relation = _relation(where, there) or ("is" if _same_file(where, there) else None)
    if relation is None:
        return
    resolved = ""
    if _absolute(path) != where or _absolute(other_path) != there:  # a symlink or a `..` was followed
        resolved = f" (both resolve to {where})" if where == there else f" (resolved: {where} and {there})"
    raise JobError(f"{role} {os.fspath(path)} {relation} {other} {os.fspath(other_path)}{resolved}; {why}")


def _check_kind(out: Output, where: Path) -> None:
    """Refuse a file name with a trailing slash, and an existing path of the wrong kind."""
    text = os.fspath(out.path)
    if not out.folder and text.endswith(_SEPARATORS):
        raise JobError(f"{out.role} {text}: ends with a slash, which names a folder; give a file name")
    try:
        mode = os.stat(where).st_mode
    except OSError:
        return  # missing, or below a file: creating it fails at once, and its writer says why
    if out.folder and not stat.S_ISDIR(mode):
        raise JobError(f"{out.role} {text}: exists and is not a folder ({_kind(mode)}); give a folder")
    if not out.folder and stat.S_ISDIR(mode):
        raise JobError(f"{out.role} {text}: is a folder; give a file name")
    if not out.folder and not stat.S_ISREG(mode):
        raise JobError(f"{out.role} {text}: is a {_kind(mode)}, not a regular file; composer would replace it: "
                       "give the path of a regular file")


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISREG, "regular file"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
             (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "folder"))
    return next((name for test, name in kinds if test(mode)), "special file")


def _check_names(out: Output, where: Path) -> None:
    """Refuse a name (of the output, a folder to create above it, or a hidden file beside it) too long for the
    file system, which would otherwise fail only when that file is written, maybe after the whole render."""
    existing = where
    while not os.path.exists(existing) and existing != existing.parent:  # an over-long name raises in exists()
        existing = existing.parent
    limit = _name_max(existing if existing.is_dir() else existing.parent)
    missing = where.relative_to(existing).parts if where != existing else ()
    named = [(name, "") for name in missing] + [(name, "its hidden file ") for name in out.hidden]
    for name, what in named:
        size = len(os.fsencode(name))
        if size > limit:
            short = name if len(name) <= 40 else f"{name[:12]}...{name[-20:]}"
            raise JobError(f"{out.role} {os.fspath(out.path)}: name too long: {what}{short} is {size} bytes, "
                           f"the file system allows {limit}")


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return _NAME_MAX
