"""What every ``composer`` command shares: one-line errors and exit statuses, signals, option callbacks."""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from composer.config.checks import parse_frame_size
from composer.config.job import parse_override
from composer.errors import ComposerError, Interrupted
from composer.runtime import signals

F = TypeVar("F", bound=Callable[..., Any])


def positive_or_auto(ctx: click.Context, param: click.Parameter, value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(f"expected a positive integer or 'auto', got {value!r}") from None
    if number < 1:
        raise click.BadParameter(f"expected a positive integer or 'auto', got {value!r}")
    return number


def frame_size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        return parse_frame_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _interrupted(exc: KeyboardInterrupt) -> str:
    """What an interrupt left, truthfully: a resume command only where a state that ``--resume`` continues is on
    disk (:class:`~composer.errors.Interrupted` says; a plain KeyboardInterrupt came before any output was
    opened)."""
    resumable = isinstance(exc, Interrupted) and exc.resumable
    if click.get_current_context().command.name != "run":
        return "interrupted" + ("; finished frames and video segments are kept" if resumable else "")
    if resumable:
        command = " ".join(shlex.quote(a) for a in ["composer", *sys.argv[1:]] if a not in ("--resume", "-r"))
        return f"interrupted; finished frames and video segments are kept; continue with: {command} --resume"
    if isinstance(exc, Interrupted):
        return "interrupted before any frame was kept; there is nothing to resume: run the command again"
    return "interrupted before any output was written"


def _report(exc: BaseException) -> int | None:
    """Say in one line what stopped the command and return its exit status: composer's errors, and interrupts
    (also one that a library wrapped in an error of its own); None for anything else, which is a bug to show."""
    interrupt = signals.interrupt_behind(exc)
    if interrupt is not None:
        click.echo(f"composer: {_interrupted(interrupt)}", err=True)
        return 130
    if isinstance(exc, ComposerError):
        click.echo(f"composer: error: {exc}", err=True)
        return exc.exit_code
    return None


def reports_errors(command: F) -> F:
    """Turn composer's errors into one line on stderr and the error's exit status (tracebacks: --debug).

    SIGTERM stops a command as Ctrl-C does (exit status 130, every stage joined, finished work kept), and only
    the first of several signals does: :func:`composer.runtime.signals.handling_signals`.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        with signals.handling_signals():
            try:
                result = command(*args, **kwargs)
            except (Exception, KeyboardInterrupt) as exc:
                status = None if debug else _report(exc)
                if status is None:
                    raise
                sys.exit(status)
            if signals.late_signal():
                click.echo("composer: a signal came once the outputs were complete; they are kept, finished",
                           err=True)
            return result

    return wrapper  # type: ignore[return-value]


def overrides(batch: int | None, workers: int | None, chunk: int | str | None, frames: Path | None,
               video: Path | None, settings: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for text in settings:
        section, key, value = parse_override(text)
        overrides.setdefault(section, {})[key] = value
    run = overrides.setdefault("run", {})
    for key, value in (("batch", batch), ("workers", workers), ("chunk", chunk)):
        if value is not None:
            run[key] = value
    output = overrides.setdefault("output", {})
    for key, path in (("frames", frames), ("video", video)):
        if path is not None:
            output[key] = str(path)
    return overrides
