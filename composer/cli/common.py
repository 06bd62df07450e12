"""What every ``composer`` command shares: one-line errors and exit statuses, signals, option callbacks."""

from __future__ import annotations

import functools
import math
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from composer.config.checks import parse_frame_size
from composer.config.job import parse_override
from composer.config.limits import MAX_FRAMES
from composer.errors import ComposerError, Interrupted
from composer.runtime import signals

F = TypeVar("F", bound=Callable[..., Any])


def positive_or_auto(ctx: click.Context, param: click.Parameter, value: str | None) -> int | str | None:
    """A count of template frames (``--chunk``): 1 to :data:`~composer.config.limits.MAX_FRAMES`, or 'auto'."""
    if value is None or value == "auto":
        return value
    try:
        number = int(value) if len(value) < 20 else 0
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_FRAMES:
        raise click.BadParameter(f"expected 1 to {MAX_FRAMES} or 'auto', got {one_line(value, 40)}")
    return number


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange without NaN and the infinities, which it lets through."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number", param, ctx)
        return number


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (runs of white space as one space), cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OneLineGroup(click.Group):
    """A command group whose usage errors (a bad option, a value out of range) are one line,
    ``composer: error: ...``, exit status 2, like composer's own errors; ``--help`` still shows the usage."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _one_line_usage(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line_usage(exc) from None


class _UsageLine(click.ClickException):
    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"composer: error: {self.message}", err=True)


def _one_line_usage(exc: click.UsageError) -> click.ClickException:
    if type(exc).__name__ == "NoArgsIsHelpError":  # `composer` alone prints its help
        return exc
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    return _UsageLine(one_line(exc.format_message()) + where)


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
    """Say in one line what stopped the command and return its exit status: composer's errors, interrupts (also
    one that a library wrapped in an error of its own) and any unexpected exception; None for click's own
    exceptions, which click reports."""
    interrupt = signals.interrupt_behind(exc)
    if interrupt is not None:
        click.echo(f"composer: {_interrupted(interrupt)}", err=True)
        return 130
    if isinstance(exc, ComposerError):
        click.echo(f"composer: error: {one_line(str(exc), 2000)}", err=True)
        return exc.exit_code
    if isinstance(exc, (click.ClickException, click.exceptions.Exit, click.exceptions.Abort)):
        return None  # click's own: a usage error (OneLineGroup prints it), ctx.exit(), an abort
    if isinstance(exc, Exception):  # MemoryError, RecursionError, OverflowError and any bug: one line too
        name = "MemoryError" if isinstance(exc, MemoryError) else type(exc).__name__
        click.echo(f"composer: error: unexpected {name}: {one_line(str(exc))}; run again with --debug for "
                   "the traceback", err=True)
        return 1
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


def overrides(batch: int | None, workers: int | None, chunk: int | str | None, frames: str | Path | None,
               video: str | Path | None, settings: tuple[str, ...]) -> dict[str, dict[str, Any]]:
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
