"""``composer live``: render feature rows from standard input as they arrive, at the output's frame rate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from composer.cli.common import FiniteFloatRange, overrides, reports_errors


@click.command("live")
@click.argument("job_file", metavar="JOB", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, metavar="PATH|-",
              help="Where the stream goes: an MPEG-TS file (NAME.ts) a player can read while it is written, - for "
                   "MPEG-TS on standard output, or a folder for numbered images.")
@click.option("--stats", "stats_file", type=click.Path(dir_okay=False),
              help="Write frames, rendered, dropped, idle, latency percentiles and streams served as JSON at the "
                   "end.")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False),
              help="Write every thread's spans as a Chrome trace (open it in ui.perfetto.dev) and a PNG timeline.")
@click.option("--latency", "latency_ms", type=FiniteFloatRange(1, 60_000), metavar="MS",
              help="Milliseconds from a row's arrival to its frame's place in the stream; frames that cannot make "
                   "it are dropped. Default: from the model's time for one frame, measured at start-up.")
@click.option("-s", "--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any job key, e.g. --set output.fps=30 (repeatable).")
@reports_errors
def live(job_file: Path, output: str, stats_file: str | None, trace_file: str | None, latency_ms: float | None,
         settings: tuple[str, ...]) -> None:
    """Render the feature rows arriving on standard input with the job JOB, as a live stream.

    Rows are raw little-endian float32, one after another, each of the job's row shape (features.row_shape, or
    the rows of features.path). Output frame i is row i's, on template frame t(i) as in a file render; frames
    leave at the output's frame rate. A frame that would be late is dropped (its place repeats the previous
    frame); while no row comes, the template's own frames keep the stream going. The end of the input ends the
    stream (exit 0); Ctrl-C or SIGTERM close it so it plays (exit 130); a malformed row exits 2.
    """
    from composer.cli.measure import emit_trace, trace_outputs
    from composer.config.job import load_job
    from composer.live.runner import open_live
    from composer.live.stream import STDOUT, stream_output
    from composer.output.safety import check_paths, file_output, job_inputs
    from composer.runtime.trace import Tracer

    job = load_job(job_file, overrides(None, None, None, None, None, settings))
    written = [] if output == STDOUT else [stream_output(output)]
    if stats_file is not None:
        written.append(file_output("--stats", stats_file, temporary=False))
    check_paths(job_inputs(job), [*written, *trace_outputs(trace_file)])
    tracer = Tracer() if trace_file is not None else None
    latency = latency_ms / 1000 if latency_ms is not None else None
    with open_live(job, latency=latency, tracer=tracer) as stream:
        click.echo(f"composer live: ready: {stream.plan.fps} fps, latency budget {stream.clock.latency * 1000:.0f} "
                   f"ms, rows of {list(stream.shape)} float32 on standard input", err=True)
        try:
            stream.run(sys.stdin.fileno(), output)
        finally:
            stats = stream.stats()
            if stats_file is not None:
                stats.write(Path(stats_file))
            if tracer is not None and trace_file is not None:
                frames = stats.summary()["frames"]
                emit_trace(tracer, Path(trace_file), f"{job_file.name}: composer live, {frames} frames")
            if stream.reader_gone is not None:
                click.echo(f"composer live: {stream.reader_gone}; the stream ends there", err=True)
            click.echo(f"composer live: {stats.line()}", err=True)
