"""One run at a time on an output: a lock file beside it names the run that holds it.

Each output has a lock file beside it (``out/.frames.composer.lock`` for the frames folder ``out/frames``,
``out/.result.mp4.composer.lock`` for the video ``out/result.mp4``), held with ``flock`` from before a run looks at
what an earlier one left there until it ends, however it ends. The file says which process holds it
(``pid 4242 on render-01``), and a second run that finds it held refuses in one line naming that process (exit
status 2) instead of clearing the first run's video segments under it. The operating system drops the lock when
its process ends, killed included, so the lock of a dead run is free and the next run takes it over: no guessing
from a PID whether a process still lives. Released, the file is removed.

Not the ``filelock`` package: it opens the lock file with ``O_TRUNC`` each time it tries to take it, which erases
the holder's name before the refused run could read it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from composer.config.job import Job
from composer.errors import OutputError
from composer.output.safety import check_job

__all__ = ["OutputLock", "lock_path", "lock_outputs"]

_SUFFIX = ".composer.lock"

if sys.platform == "win32":  # pragma: no cover - not exercised here
    import msvcrt

    def _try_lock(fd: int) -> bool:
        # A byte past the holder's name: Windows keeps other processes from reading a locked range.
        os.lseek(fd, 1 << 20, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def lock_path(output: Path) -> Path:
    """The lock file of an output (a frames folder or a video): hidden, beside it."""
    return output.parent / f".{output.name}{_SUFFIX}"


class OutputLock:
    """The lock of one output, held from :meth:`acquire` to :meth:`release` (or as a context manager)."""

    def __init__(self, output: Path) -> None:
        self.output = Path(output)
        self.path = lock_path(self.output)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or refuse.

        Raises:
            OutputError: another run holds it (the message names its process), or the file cannot be made.
        """
        while True:
            fd = self._open()
            try:
                if not _try_lock(fd):
                    raise OutputError(f"{self.output}: another composer run is writing there ({_holder(fd)}); "
                                      "wait for it to finish or stop it, then run again")
                if self._is_current(fd):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # the holder released it (and removed the file) between our open and our lock
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Remove the file and drop the lock (nothing when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                self.path.unlink()  # while still held: a run that opened it meanwhile sees it gone and opens anew
        finally:
            os.close(fd)

    def _open(self) -> int:
        # No O_TRUNC (the holder's name stays readable) and no following a link planted at the lock's name.
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create the output's lock file: {exc.strerror or exc}") from exc

    def _is_current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at the lock's name (a releasing run removes it after we opened it)."""
        try:
            named = self.path.stat(follow_symlinks=False)
        except OSError:
            return False
        held = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    """The holder's name as it wrote it: ``pid 4242 on render-01``."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 200).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "a run that is just starting"


@contextlib.contextmanager
def lock_outputs(job: Job) -> Iterator[None]:
    """Hold the locks of every output of ``job`` inside the block (taken in a fixed order), once the outputs are
    checked against the inputs (:func:`composer.output.safety.check_job`): a lock file is written beside each.

    Raises:
        JobError: an output would overwrite an input or collide with another.
        OutputError: another run writes one of them.
    """
    check_job(job)
    outputs = sorted({p for p in (job.output.frames, job.output.video) if p is not None})
    with contextlib.ExitStack() as held:
        for output in outputs:
            held.enter_context(OutputLock(output))
        yield
