"""The ``composer`` command: parse, call the library, print. Errors become one line and an exit status."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from composer import __version__
from composer.cli.common import OneLineGroup, frame_size, overrides, positive_or_auto, reports_errors
from composer.config.job import Job, load_job
from composer.config.limits import MAX_BATCH, MAX_DEMO_FRAMES, MAX_FRAMES, MAX_THREADS
from composer.rendering.observer import ProgressBar, RenderStats
from composer.runtime.trace import Tracer

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("composer")


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="composer")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """Render videos in which an ONNX model repaints one region of every frame.

    Start with `composer demo`; then `composer init DIR` writes a commented job file to edit, and
    `composer run DIR/job.toml` renders it.
    """
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="composer: %(message)s")


def _say(text: str) -> None:
    """Print a line of a command's result on stdout.

    A reader that has gone (``composer run JOB | head -1``, a closed pipe) is no failure: the work is done, so
    the line is dropped rather than the exit status turned to 1.
    """
    try:
        click.echo(text)
    except OSError as exc:
        if exc.errno not in (errno.EPIPE, errno.EBADF):
            raise
        # Python flushes stdout once more at exit; pointed at the null device, that flush cannot fail too.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _summary(job: Job, stats: RenderStats) -> str:
    where = [str(p) for p in (job.output.frames, job.output.video) if p is not None]
    return (
        f"wrote {stats.frames} frames to {' and '.join(where)} in {stats.seconds:.1f} s "
        f"({stats.fps:.1f} fps), peak memory {stats.peak_rss / 2**20:.0f} MiB"
    )


def _render(job: Job, reference: bool, quiet: bool, resume: bool = False,
            tracer: Tracer | None = None, count: int | None = None, overwrite: bool = False) -> RenderStats:
    from composer.rendering.reference import render_reference
    from composer.rendering.render import render

    if not quiet and log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)  # say which execution provider runs the model
    observer = ProgressBar(enabled=None if not quiet else False, label="reference" if reference else "render")
    if reference:
        return render_reference(job, observer, resume=resume, frames=count, overwrite=overwrite)
    if job.run.cluster is not None:
        from composer.cluster.render import render_on_cluster

        return render_on_cluster(job, job.run.cluster, observer, tracer=tracer, resume=resume, frames=count,
                                 overwrite=overwrite)
    return render(job, observer, tracer=tracer, resume=resume, frames=count, overwrite=overwrite)


@main.command()
@click.argument("job_file", metavar="JOB", type=click.Path(path_type=Path))
@click.option("--reference", is_flag=True, help="Use the plain per-frame reference renderer (slow, exact).")
@click.option("-b", "--batch", type=click.IntRange(1, MAX_BATCH), help="Frames per model call [run.batch].")
@click.option("-w", "--workers", type=click.IntRange(1, MAX_THREADS), help="Composite threads [run.workers].")
@click.option("-c", "--chunk", callback=positive_or_auto, metavar="N|auto",
              help="Template frames cached at once [run.chunk].")
# Output paths stay text, so that the check of a file's name sees a trailing slash.
@click.option("-f", "--frames", type=click.Path(), help="Folder for numbered images [output.frames].")
@click.option("-o", "--video", type=click.Path(), help="H.264 mp4 to write [output.video].")
@click.option("-s", "--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any job key, e.g. --set output.fps=30000/1001 (repeatable).")
@click.option("-r", "--resume", is_flag=True,
              help="Continue an interrupted run of the same job; the result is identical to an uninterrupted one.")
@click.option("-n", "--first", "count", type=click.IntRange(1, MAX_FRAMES), metavar="N",
              help="Render only the first N output frames (a preview), each as the whole job renders it.")
@click.option("--overwrite", is_flag=True,
              help="Remove the numbered images an earlier, longer run left in the frames folder (only those) "
                   "instead of refusing to start.")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False),
              help="Write every stage's spans as a Chrome trace (open it in ui.perfetto.dev) and a PNG timeline "
                   "beside it.")
@click.option("--cluster", metavar="ADDRESS",
              help="Render on a Dask cluster: tcp://HOST:PORT, or local:N for N worker processes here "
                   "[run.cluster].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@reports_errors
def run(job_file: Path, reference: bool, batch: int | None, workers: int | None, chunk: int | str | None,
        frames: str | None, video: str | None, settings: tuple[str, ...], resume: bool, count: int | None,
        overwrite: bool, trace_file: str | None, cluster: str | None, quiet: bool) -> None:
    """Render the job described by the TOML file JOB.

    Ctrl-C (or SIGTERM) stops promptly and keeps every finished image and video segment; run the same
    command with --resume to finish the job. One run at a time writes an output: a second one is refused.
    """
    if trace_file is not None and reference:
        raise click.UsageError("--trace records the processor's threads; the reference loop has none")
    from composer.cli.measure import emit_trace, trace_outputs
    from composer.output.safety import check_job

    if cluster is not None:
        settings = (*settings, f"run.cluster={cluster}")
    job = load_job(job_file, overrides(batch, workers, chunk, frames, video, settings))
    check_job(job, trace_outputs(trace_file))  # before the template and the model are opened
    tracer = Tracer() if trace_file is not None else None
    stats = _render(job, reference, quiet, resume, tracer, count, overwrite)
    if tracer is not None and trace_file is not None:
        emit_trace(tracer, Path(trace_file), f"{job_file.name}: the processor's threads, {stats.frames} frames")
    if not quiet:
        _say(_summary(job, stats))


@main.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("composer-demo"),
              show_default=True, help="Folder for the demo's inputs, job file and outputs.")
@click.option("-n", "--frames", "count", type=click.IntRange(1, MAX_DEMO_FRAMES), default=250, show_default=True,
              help="Output frames (10 s at 25 fps by default).")
@click.option("--size", default="1280x720", show_default=True, callback=frame_size, help="Frame size WIDTHxHEIGHT.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@reports_errors
def demo(out_dir: Path, count: int, size: tuple[int, int], quiet: bool) -> None:
    """Make a synthetic talking-head job (template, rectangles, speech, audio encoder, U-Net) and render it: the
    encoder turns the speech into the features, and the speech is muxed into the video."""
    from composer.model.providers import runtime
    from composer.tools.demo import make_demo_assets

    runtime()  # no ONNX Runtime, or two builds: one line before anything is written
    if not quiet:
        _say(f"writing demo inputs to {out_dir} ...")
    job_path = make_demo_assets(out_dir, frames=count, size=size)
    job = load_job(job_path)
    stats = _render(job, False, quiet, overwrite=True)  # the demo's own frames folder, of any earlier length
    _say(f"job file: {job_path}")
    _say(f"frames:   {job.output.frames}")
    _say(f"video:    {job.output.video}")
    _say(
        f"rendered {stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} fps, "
        f"peak memory {stats.peak_rss / 2**20:.0f} MiB"
    )


def _register() -> None:
    from composer.cli.assets import features, init
    from composer.cli.live import live
    from composer.cli.measure import profile, sweep
    from composer.cli.precision import fp16, precision
    from composer.cli.tools import inspect_command, rects

    main.add_command(features)
    main.add_command(init)
    main.add_command(rects)
    main.add_command(inspect_command)
    main.add_command(profile)
    main.add_command(sweep)
    main.add_command(live)
    main.add_command(fp16)
    main.add_command(precision)


_register()

if __name__ == "__main__":
    main()
