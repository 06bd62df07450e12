"""The one exception tree of composer.

::

    ComposerError                 anything composer reports to a user
    ├── JobError                  a bad job file or bad inputs (exit status 2)
    ├── SourceError               the template could not be read or decoded
    ├── ModelError                the model could not be loaded or run
    └── OutputError               an output could not be written

Messages are one line and name the file, key, frame or shape at fault; the CLI prints them as they are.
"""

from __future__ import annotations


class ComposerError(Exception):
    """Base class of every error composer reports to a user."""

    exit_code = 1


class JobError(ComposerError):
    """The job file or one of its inputs is invalid."""

    exit_code = 2


class SourceError(ComposerError):
    """The template video or frames could not be read."""


class ModelError(ComposerError):
    """The model could not be loaded, does not fit the job, or failed to run."""


class OutputError(ComposerError):
    """An output file or folder could not be written."""
