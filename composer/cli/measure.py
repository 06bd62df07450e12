"""The measuring commands, ``composer profile`` and ``composer sweep``, registered on ``composer``'s group.

Thin, like :mod:`composer.cli.main`: parse, call :mod:`composer.measure.profile` /
:mod:`composer.measure.sweep`, print. This module imports nothing heavy at import time.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from composer.cli.common import OneLineGroup, overrides, reports_errors
from composer.config.limits import MAX_BATCH, MAX_FRAMES, MAX_GRID, MAX_ROUNDS, MAX_THREADS

if TYPE_CHECKING:
    from composer.output.safety import Output
    from composer.runtime.trace import NullTracer

F = TypeVar("F", bound=Callable[..., Any])

_FRAMES_DEFAULT = 250  # composer.measure.profile.DEFAULT_FRAMES, without importing it here


def _reports_errors(command: F) -> F:
    """:func:`composer.cli.common.reports_errors`, with Ctrl-C's own message: measuring writes nothing of the
    job's, so there is nothing to resume."""

    @functools.wraps(command)
    def interruptible(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            if click.get_current_context().find_root().params.get("debug", False):
                raise
            click.echo("composer: interrupted; the job's outputs were not touched", err=True)
            sys.exit(130)

    return reports_errors(interruptible)  # type: ignore[return-value]


def _int_list(maximum: int) -> Callable[[click.Context, click.Parameter, str | None], tuple[int, ...] | None]:
    """A callback reading comma-separated integers from 1 to ``maximum``, at most MAX_GRID of them."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
        if value is None:
            return None
        shown = value if len(value) <= 40 else value[:37] + "..."
        parts = [v for v in (v.strip() for v in value.split(",")) if v]
        try:
            # 20 digits and more are past any maximum, and int() of 5000 digits raises
            numbers = tuple(int(v) if len(v) < 20 else maximum + 1 for v in parts)
        except ValueError:
            raise click.BadParameter(f"expected comma-separated integers such as 1,2,4, got {shown!r}") from None
        if not numbers or min(numbers) < 1 or max(numbers) > maximum or len(numbers) > MAX_GRID:
            raise click.BadParameter(f"expected up to {MAX_GRID} positive integers up to {maximum} such as 1,2,4, "
                                     f"got {shown!r}")
        return tuple(dict.fromkeys(numbers))

    return parse


def _load(job_file: Path, batch: int | None, workers: int | None, settings: tuple[str, ...]) -> Any:
    from composer.config.job import load_job

    return load_job(job_file, overrides(batch, workers, None, None, None, settings))


def _relative(path: Path, report: Path) -> str:
    return Path(os.path.relpath(Path(path).absolute(), Path(report).absolute().parent)).as_posix()


def emit_trace(tracer: NullTracer, path: Path, title: str = "") -> Path | None:
    """Write ``--trace``'s files (Chrome trace JSON, PNG timeline beside it) and say where they went.

    Returns the picture's path, or None without matplotlib (a hint goes to stderr then).
    """
    from composer.measure.timeline import MATPLOTLIB_MISSING, save_trace

    trace, picture = save_trace(tracer, path, title)
    click.echo(f"trace:    {trace} (open it in https://ui.perfetto.dev or chrome://tracing)", err=True)
    if picture is not None:
        click.echo(f"timeline: {picture}", err=True)
    else:
        click.echo(f"composer: {MATPLOTLIB_MISSING}", err=True)
    return picture


def trace_outputs(trace: str | None) -> list[Output]:
    """What ``--trace`` writes: the trace, and the timeline beside it (for :mod:`composer.output.safety`)."""
    from composer.measure.timeline import picture_path
    from composer.output.safety import file_output

    if trace is None:
        return []
    return [file_output("--trace", trace, temporary=False),
            file_output("--trace's timeline", picture_path(Path(trace)), temporary=False)]


def _check_outputs(job: Any, outputs: list[Output]) -> None:
    """Refuse files of a measuring command that would overwrite the job's inputs or its own outputs (a finished
    render is not the measurement's to touch), or collide with each other."""
    from composer.output.safety import check_paths, job_inputs, job_outputs

    rendered = [(f"the job's {out.role}", out.path) for out in job_outputs(job)]
    check_paths([*job_inputs(job), *rendered], outputs,
                "measuring never writes over the job's inputs or outputs: choose another path")


_job_argument = click.argument("job_file", metavar="JOB", type=click.Path(path_type=Path))
_set_option = click.option("-s", "--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE",
                           help="Override any job key, as for `composer run` (repeatable).")
_frames_option = click.option(
    "-n", "--frames", type=click.IntRange(1, MAX_FRAMES), default=_FRAMES_DEFAULT, show_default=True,
    help="Output frames to measure (the job's first N; a job without [features] always uses all of its own).")
# Output paths stay text, so that the check of a file's name sees a trailing slash.
_report_option = click.option("--report", "report_file", type=click.Path(dir_okay=False),
                              help="Also write the result as a section of this Markdown file (e.g. RESULTS.md).")


@click.command("profile")
@_job_argument
@_frames_option
@click.option("-b", "--batch", type=click.IntRange(1, MAX_BATCH), help="Frames per model call [run.batch].")
@click.option("-w", "--workers", type=click.IntRange(1, MAX_THREADS), help="Composite threads [run.workers].")
@_set_option
@click.option("--rounds", type=click.IntRange(1, MAX_ROUNDS), default=1, show_default=True,
              help="Renders, each followed by a measurement of the stages; the efficiency is their median.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False),
              help="Write the processor run's spans as a Chrome trace (Perfetto) and a PNG timeline beside it.")
@_report_option
@click.option("--section", default="profile", show_default=True, help="Name of the report section.")
@_reports_errors
def profile(job_file: Path, frames: int, batch: int | None, workers: int | None, settings: tuple[str, ...],
             rounds: int, as_json: bool, trace_file: str | None, report_file: str | None, section: str) -> None:
    """Measure each stage of JOB alone, the speed they allow, and how close the processor gets.

    Runs decode, prepare, infer, composite and write one at a time on one thread over the job's first
    frames and prints, per output frame, their wall and CPU milliseconds; then the CPU bound (cores / CPU
    seconds per frame; with an accelerator, also the model's own bound), the processor's fps on the same
    frames, the efficiency (fps / bound), peak RSS and frame latency. The stages are measured before and
    after the processor's render, and the bound is from their mean, so that a machine whose speed drifts is
    compared with the render at its own pace. With --rounds N, N renders alternate with the measurements and
    the efficiency is the median of each render's against the measurements on either side of it. Nothing of
    the job's outputs is touched.
    """
    from composer.measure.machine import describe_machine
    from composer.measure.profile import profile_job
    from composer.measure.report import write_section
    from composer.output.safety import file_output
    from composer.runtime.trace import Tracer

    job = _load(job_file, batch, workers, settings)
    report = Path(report_file) if report_file is not None else None
    reports = [file_output("--report", report_file)] if report_file is not None else []
    _check_outputs(job, [*reports, *trace_outputs(trace_file)])
    tracer = Tracer()
    result = profile_job(job, frames, tracer, rounds)
    picture = None
    if trace_file is not None:
        title = f"{job_file.parent.name}/{job_file.name}: the processor's threads, {result.run.frames} frames"
        picture = emit_trace(tracer, Path(trace_file), title)
    if as_json:
        click.echo(json.dumps({**result.to_json(), "machine": describe_machine().to_json()}, indent=2))
    else:
        click.echo(result.text())
    if report is not None:
        body = [f"## Profile: {job_file.parent.name}/{job_file.name}", "", result.markdown()]
        if picture is not None:
            body += ["", f"Timeline of the processor's run ({_relative(trace_file, report)} opens in Perfetto):",  # type: ignore[arg-type]
                     "", f"![threads over time]({_relative(picture, report)})"]
        body += ["", f"Machine: {describe_machine().summary()}."]
        write_section(report, section, "\n".join(body))
        click.echo(f"report:   {report} (section {section})", err=True)


@click.command("sweep")
@_job_argument
@click.option("--modes", default="segments,pipeline", show_default=True,
              help="Renderers, comma-separated: the segment renderer (its points have no composite workers) and/or "
                   "the pipeline.")
@click.option("--batch", "batches", callback=_int_list(MAX_BATCH), default="1,2,4,8", show_default=True,
              help="Batch sizes, comma-separated.")
@click.option("--workers", "workers", callback=_int_list(MAX_THREADS), default="1,2,4", show_default=True,
              help="Composite worker counts, comma-separated.")
@click.option("--lanes", "lanes", callback=_int_list(MAX_THREADS), default=None,
              help="Model lane counts (sessions side by side), comma-separated [default: the job's run.lanes].")
@click.option("--threads", "threads", callback=_int_list(MAX_THREADS), default=None,
              help="Intra-op threads per lane, comma-separated [default: the job's run.threads].")
@click.option("--repeats", type=click.IntRange(1, MAX_ROUNDS), default=3, show_default=True, help="Renders per point.")
@click.option("--confirm", type=click.IntRange(0, MAX_ROUNDS), default=3, show_default=True,
              help="Renders each of the best point and the job's own settings, in turns after the grid, when they "
                   "differ (0: none).")
@_frames_option
@_set_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@_report_option
@click.option("--section", default="sweep", show_default=True, help="Name of the report section.")
@click.option("--picture", "picture_file", type=click.Path(dir_okay=False),
              help="Heat map PNG [default with --report: results/SECTION.png beside the report].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar (there is none unless stderr is a terminal).")
@_reports_errors
def sweep(job_file: Path, modes: str, batches: tuple[int, ...], workers: tuple[int, ...],
           lanes: tuple[int, ...] | None, threads: tuple[int, ...] | None, repeats: int, confirm: int, frames: int,
           settings: tuple[str, ...], as_json: bool, report_file: str | None, section: str, picture_file: str | None,
           quiet: bool) -> None:
    """Render JOB over a grid of renderers, batch sizes, workers (and model lanes and threads), each point
    repeated.

    Prints a table of the median fps (with its range), p95 latency and peak RSS per point and the best point;
    with --report, writes it as a section of a Markdown file with a heat map and the machine it ran on. The job's
    own settings are then rendered in turns with the best point (--confirm), which tells how far they are
    from it better than the grid's medians, the best of which is flattered by the noise that picked it.
    """
    from composer.measure.report import write_section
    from composer.measure.sweep import draw_heatmap, run_sweep
    from composer.measure.timeline import MATPLOTLIB_MISSING
    from composer.output.safety import file_output

    job = _load(job_file, None, None, settings)
    report = Path(report_file) if report_file is not None else None
    picture = Path(picture_file) if picture_file is not None else None
    if picture is None and report is not None:
        picture = report.parent / "results" / f"{section}.png"
    reports = [file_output("--report", report_file)] if report_file is not None else []
    pictures = [file_output("--picture", picture_file or picture, temporary=False)] if picture is not None else []
    _check_outputs(job, [*reports, *pictures])
    progress = not quiet and sys.stderr.isatty()
    result = run_sweep(job, batches, workers, threads or (None,), repeats, frames, progress=progress,
                       lanes=lanes or (None,), confirm=confirm, modes=[m.strip() for m in modes.split(",")],
                       say=None if quiet else lambda line: click.echo(f"composer: {line}", err=True))
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else result.text())
    drawn = draw_heatmap(result, picture) if picture is not None else None
    if picture is not None and drawn is None:
        click.echo(f"composer: {MATPLOTLIB_MISSING}", err=True)
    if report is not None:
        body = f"## Sweep: {job_file.parent.name}/{job_file.name}\n\n" + result.markdown(
            _relative(drawn, report) if drawn is not None else None)
        write_section(report, section, body)
        click.echo(f"report:   {report} (section {section})", err=True)



@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def measure(debug: bool) -> None:
    """composer's measuring commands on their own (`composer profile` and `composer sweep` are the same)."""


measure.add_command(profile)
measure.add_command(sweep)

if __name__ == "__main__":
    measure()
