"""The ``composer`` command: parse, call the library, print. Errors become one line and an exit status."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from composer import __version__
from composer.cli.common import frame_size, overrides, positive_or_auto, reports_errors
from composer.config.job import Job, load_job
from composer.rendering.observer import ProgressBar, RenderStats
from composer.runtime.trace import Tracer

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("composer")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="composer")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """Render videos in which an ONNX model repaints one region of every frame.

    Start with `composer demo`, then write a job file (see configs/) and `composer run JOB.toml`.
    """
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="composer: %(message)s")


def _summary(job: Job, stats: RenderStats) -> str:
    where = [str(p) for p in (job.output.frames, job.output.video) if p is not None]
    return (
        f"wrote {stats.frames} frames to {' and '.join(where)} in {stats.seconds:.1f} s "
        f"({stats.fps:.1f} fps), peak memory {stats.peak_rss / 2**20:.0f} MiB"
    )


def _render(job: Job, reference: bool, quiet: bool, resume: bool = False,
            tracer: Tracer | None = None) -> RenderStats:
    from composer.rendering.reference import render_reference
    from composer.rendering.render import render

    if not quiet and log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)  # say which execution provider runs the model
    observer = ProgressBar(enabled=None if not quiet else False, label="reference" if reference else "render")
    if reference:
        return render_reference(job, observer, resume=resume)
    return render(job, observer, tracer=tracer, resume=resume)


@main.command()
@click.argument("job_file", metavar="JOB", type=click.Path(path_type=Path))
@click.option("--reference", is_flag=True, help="Use the plain per-frame reference renderer (slow, exact).")
@click.option("-b", "--batch", type=click.IntRange(min=1), help="Frames per model call [run.batch].")
@click.option("-w", "--workers", type=click.IntRange(min=1), help="Composite threads [run.workers].")
@click.option("-c", "--chunk", callback=positive_or_auto, metavar="N|auto",
              help="Template frames cached at once [run.chunk].")
@click.option("-f", "--frames", type=click.Path(path_type=Path), help="Folder for numbered images [output.frames].")
@click.option("-o", "--video", type=click.Path(path_type=Path), help="H.264 mp4 to write [output.video].")
@click.option("-s", "--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any job key, e.g. --set output.fps=30000/1001 (repeatable).")
@click.option("-r", "--resume", is_flag=True,
              help="Continue an interrupted run of the same job; the result is identical to an uninterrupted one.")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every stage's spans as a Chrome trace (open it in ui.perfetto.dev) and a PNG timeline "
                   "beside it.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@reports_errors
def run(job_file: Path, reference: bool, batch: int | None, workers: int | None, chunk: int | str | None,
        frames: Path | None, video: Path | None, settings: tuple[str, ...], resume: bool, trace_file: Path | None,
        quiet: bool) -> None:
    """Render the job described by the TOML file JOB.

    Ctrl-C (or SIGTERM) stops promptly and keeps every finished image and video segment; run the same
    command with --resume to finish the job. One run at a time writes an output: a second one is refused.
    """
    if trace_file is not None and reference:
        raise click.UsageError("--trace records the processor's threads; the reference loop has none")
    job = load_job(job_file, overrides(batch, workers, chunk, frames, video, settings))
    tracer = Tracer() if trace_file is not None else None
    stats = _render(job, reference, quiet, resume, tracer)
    if tracer is not None and trace_file is not None:
        from composer.cli.measure import emit_trace

        emit_trace(tracer, trace_file, f"{job_file.name}: the processor's threads, {stats.frames} frames")
    if not quiet:
        click.echo(_summary(job, stats))


@main.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("composer-demo"),
              show_default=True, help="Folder for the demo's inputs, job file and outputs.")
@click.option("-n", "--frames", "count", type=click.IntRange(min=1), default=250, show_default=True,
              help="Output frames (10 s at 25 fps by default).")
@click.option("--size", default="1280x720", show_default=True, callback=frame_size, help="Frame size WIDTHxHEIGHT.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@reports_errors
def demo(out_dir: Path, count: int, size: tuple[int, int], quiet: bool) -> None:
    """Make a synthetic talking-head job (template, rectangles, audio features, U-Net) and render it."""
    from composer.tools.demo import make_demo_assets

    if not quiet:
        click.echo(f"writing demo inputs to {out_dir} ...")
    job_path = make_demo_assets(out_dir, frames=count, size=size)
    job = load_job(job_path)
    stats = _render(job, False, quiet)
    click.echo(f"job file: {job_path}")
    click.echo(f"frames:   {job.output.frames}")
    click.echo(f"video:    {job.output.video}")
    click.echo(
        f"rendered {stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} fps, "
        f"peak memory {stats.peak_rss / 2**20:.0f} MiB"
    )


def _register() -> None:
    from composer.cli.measure import profile, sweep
    from composer.cli.tools import inspect_command, rects

    main.add_command(rects)
    main.add_command(inspect_command)
    main.add_command(profile)
    main.add_command(sweep)


_register()

if __name__ == "__main__":
    main()
