"""Helper commands around a job: ``composer rects from-landmarks``, ``composer rects show``, ``composer inspect``.

Thin, like the rest of the CLI: parse, call the library, print. :mod:`composer.cli.main` registers them on ``main``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from composer.cli.common import FiniteFloatRange, OneLineGroup, reports_errors
from composer.config.job import load_job
from composer.config.limits import MAX_COLUMNS, MAX_FRAMES, MAX_MARGIN, MAX_SAMPLES, MAX_SIDE

__all__ = ["inspect_command", "rects"]

_PATH = click.Path(path_type=Path)
_OUT = click.Path()  # text, so that the check of a file's name sees a trailing slash


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
def rects() -> None:
    """Make a rectangles file from face landmarks, or check one against its template."""


@rects.command("from-landmarks")
@click.argument("folder", metavar="DIR", type=_PATH)
@click.option("-o", "--output", "out", type=_OUT, required=True,
              help="Rectangles file to write (JSON, one entry per frame, null where there is no box).")
@click.option("-n", "--frames", type=click.IntRange(1, MAX_FRAMES),
              help="Frames to write, 0..N-1 [default: the template's frame count with --template, else up to "
                   "the largest landmark file number].")
@click.option("-t", "--template", type=_PATH, metavar="VIDEO_OR_FOLDER",
              help="The template the rectangles are for: boxes are clamped into its frame size. Without it "
                   "boxes are NOT clamped and may stick out of the frame.")
@click.option("--smooth", type=click.IntRange(1, MAX_FRAMES), default=1, show_default=True, metavar="K",
              help="Average each box coordinate over K frames centred on the frame, to steady jitter (1: off).")
@click.option("--margin", type=FiniteFloatRange(-0.5, MAX_MARGIN, min_open=True), default=0.0, show_default=True,
              metavar="R", help="Grow each box by R times its size on every side (0.1: 10% each side).")
@click.option("--square", is_flag=True, help="Make each box square around its centre, using its larger side.")
@reports_errors
def from_landmarks(folder: Path, out: str, frames: int | None, template: Path | None, smooth: int,
                   margin: float, square: bool) -> None:
    """Write a rectangles file from a folder DIR of Ultralight-Digital-Human .lms landmark files.

    DIR holds one file per frame (0.lms, 1.lms, ... or frame_12.lms: the number in the name is the frame
    index), each a line `x y` per point. The box of a frame spans x of point 1 to x of point 31 and starts at
    y of point 52, as tall as it is wide (points numbered from 0). Frames without a file get null, so the
    render passes them through untouched.

    Example: composer rects from-landmarks landmarks/ -o rects.json --template frames/ --smooth 5 --square
    """
    from composer.inputs.landmarks import boxes_from_landmarks, read_landmarks, write_rects
    from composer.inputs.sources import open_template
    from composer.output.safety import check_paths, file_output

    inputs = [("input DIR", folder)] + ([("input --template", template)] if template is not None else [])
    check_paths(inputs, [file_output("-o", out)])
    width = height = None
    if template is not None:
        with open_template(template) as source:
            width, height = source.width, source.height
            frames = frames or source.count
    points = read_landmarks(folder, frames)
    boxes = boxes_from_landmarks(points, width=width, height=height, smooth=smooth, margin=margin,
                                 square=square)
    write_rects(Path(out), boxes)
    nulls = sum(box is None for box in boxes)
    clamp = f", clamped to {width}x{height}" if width is not None else ", not clamped (no --template)"
    click.echo(f"wrote {len(boxes) - nulls} boxes and {nulls} null frames to {out}{clamp}")


@rects.command("show")
@click.argument("template", type=_PATH)
@click.argument("rects_file", metavar="RECTS", type=_PATH)
@click.option("-o", "--output", "out", type=_OUT, required=True, help="Image to write (.png or .jpg).")
@click.option("--columns", type=click.IntRange(1, MAX_COLUMNS), default=6, show_default=True,
              help="Thumbnails per row.")
@click.option("--samples", type=click.IntRange(1, MAX_SAMPLES), default=24, show_default=True,
              help="Frames to show, spread evenly over the template (all of them if it has fewer).")
@click.option("--width", "thumb_width", type=click.IntRange(1, MAX_SIDE), default=320, show_default=True,
              help="Width of each thumbnail in pixels.")
@reports_errors
def show(template: Path, rects_file: Path, out: str, columns: int, samples: int, thumb_width: int) -> None:
    """Draw the rectangles of RECTS on sample frames of TEMPLATE (a video, image folder or image).

    Writes a contact sheet: a green box on every sampled frame that has a rectangle, a red cross on frames
    passed through untouched (null), and the frame index in each thumbnail's corner.

    Example: composer rects show template.mp4 rects.json -o sheet.png
    """
    from composer.output.safety import check_paths, file_output
    from composer.tools.contact_sheet import contact_sheet

    check_paths([("input TEMPLATE", template), ("input RECTS", rects_file)], [file_output("-o", out)])
    width, height = contact_sheet(template, rects_file, Path(out), columns=columns, samples=samples,
                                  thumb_width=thumb_width)
    click.echo(f"wrote {out} ({width}x{height})")


@click.command("inspect", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", metavar="MODEL.onnx", type=_PATH)
@click.option("-j", "--job", "job_file", type=_PATH, metavar="JOB.toml",
              help="Also check that MODEL fits this job (its template, rectangles, features and [model] "
                   "settings; MODEL replaces the job's model.path).")
@reports_errors
def inspect_command(model: Path, job_file: Path | None) -> None:
    """List the inputs and outputs of MODEL.onnx, and with --job check that it fits the job.

    Exit status: 0 when the model fits (or without --job), 1 when it does not fit, 2 for a bad job file.

    Example: composer inspect model.onnx --job job.toml
    """
    from composer.tools.inspection import DOES_NOT_FIT, check_fit, describe_model

    click.echo(describe_model(model))
    if job_file is None:
        return
    lines = check_fit(load_job(job_file, {"model": {"path": str(model)}}))
    for line in lines:
        click.echo(line)
    if any(line.startswith(DOES_NOT_FIT) for line in lines):
        sys.exit(1)
