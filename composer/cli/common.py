"""What every ``composer`` command shares: one-line errors and exit statuses, signals, option callbacks."""

from __future__ import annotations

import functools
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
from composer.errors import ComposerError

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
            click.echo(f"composer: error: {exc}", err=True)
            sys.exit(exc.exit_code)
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
