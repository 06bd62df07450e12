"""The one exception tree of composer.

::

    ComposerError                 anything composer reports to a user
    ├── JobError                  a bad job file or bad inputs
    ├── SourceError               the template could not be read or decoded
    ├── ModelError                the model could not be loaded, does not fit the job, or failed to run
    ├── OutputError               an output could not be written
    └── StageError                a stage of the processor failed while rendering (wraps the cause)

    KeyboardInterrupt
    └── Interrupted               Ctrl-C or SIGTERM stopped a run once its outputs were open; says whether
                                  what it left on disk can be resumed

Messages are one line and name the file, key, frame or shape at fault; the CLI prints them as they are.
Exit status: 2 for bad input found before the first frame (and for a template that fails to decode part-way,
which is bad input too), 1 for a failure while rendering.
"""

from __future__ import annotations


class ComposerError(Exception):
    """Base class of every error composer reports to a user."""

    exit_code = 2


class JobError(ComposerError):
    """The job file or one of its inputs is invalid."""


class SourceError(ComposerError):
    """The template video or frames could not be read."""


class ModelError(ComposerError):
    """The model could not be loaded, does not fit the job, or failed to run."""


class OutputError(ComposerError):
    """An output file or folder could not be written."""


class StageError(ComposerError):
    """A stage of the processor failed at a frame; ``__cause__`` is the original exception.

    Args:
        stage: the stage that failed (decode, prepare, infer, composite, write, ...).
        frame: where: ``"frame 17"``, ``"template frame 3"``, ``"frames 8-11"``.
        cause: what went wrong.
    """

    def __init__(self, stage: str, frame: str, cause: BaseException) -> None:
        detail = str(cause) if isinstance(cause, ComposerError) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"{stage} failed at {frame}: {detail}")
        self.stage, self.frame, self.cause = stage, frame, cause
        # A template that stops decoding part-way is bad input; anything else is a failure of the run.
        self.exit_code = 2 if isinstance(cause, (JobError, SourceError)) else 1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run after its outputs were opened (not a :class:`ComposerError`: nothing failed).

    Args:
        resumable: whether the outputs hold a state that ``--resume`` continues (this job's finished images
            and video segments, with their manifests); False when the run stopped before it had recorded one.
    """

    def __init__(self, resumable: bool) -> None:
        super().__init__("resumable" if resumable else "nothing to resume")
        self.resumable = resumable
