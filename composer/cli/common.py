"""What every ``composer`` command shares: one-line errors and exit statuses, signals, option callbacks."""

from __future__ import annotations

import functools
import math
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from composer.config.checks import parse_frame_size
from composer.config.job import parse_override
from composer.config.limits import MAX_FRAMES
from composer.errors import ComposerError

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


def _resume_hint() -> str:
    args = sys.argv[1:]
    if args[:1] == ["run"] or (len(args) > 1 and "run" in args):
        command = " ".join(shlex.quote(a) for a in ["composer", *args] if a != "--resume")
        return f"finished frames and video segments are kept; continue with: {command} --resume"
    return "unfinished outputs were removed"


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM stops a render the way Ctrl-C does: every stage joined, finished work kept.
    raise KeyboardInterrupt


def reports_errors(command: F) -> F:
    """Turn composer's errors into one line on stderr and the error's exit status (tracebacks: --debug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _terminate)
        try:
            return command(*args, **kwargs)
        except ComposerError as exc:
            if debug:
                raise
            click.echo(f"composer: error: {one_line(str(exc), 2000)}", err=True)
            sys.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: a usage error (OneLineGroup prints it), ctx.exit(), an abort
        except Exception as exc:  # MemoryError, RecursionError, OverflowError and any bug: one line too
            if debug:
                raise
            name = "MemoryError" if isinstance(exc, MemoryError) else type(exc).__name__
            click.echo(f"composer: error: unexpected {name}: {one_line(str(exc))}; run again with --debug for "
                       "the traceback", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo(f"composer: interrupted; {_resume_hint()}", err=True)
            sys.exit(130)

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
