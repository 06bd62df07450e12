"""Commands that make a job's inputs: ``composer init`` (a commented job file) and ``composer features`` (audio
features from an ONNX audio encoder). :mod:`composer.cli.main` registers them on ``main``."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import click

from composer.cli.common import FiniteFloatRange, reports_errors
from composer.config.checks import fps as fps_check
from composer.config.features import FeaturesSpec
from composer.config.limits import (
    MAX_CHUNK_SECONDS,
    MAX_OVERLAP_SECONDS,
    MAX_ROWS_PER_SECOND,
    MAX_SAMPLE_RATE,
    MIN_CHUNK_SECONDS,
    MIN_SAMPLE_RATE,
)
from composer.errors import JobError
from composer.tools.examples import DEFAULT_EXAMPLE, EXAMPLES

__all__ = ["features", "init"]

_PATH = click.Path(path_type=Path)
_CONTEXT = {"help_option_names": ["-h", "--help"]}


def _fps(ctx: click.Context, param: click.Parameter, value: str) -> Fraction:
    try:
        return fps_check("--fps", value, Path.cwd())
    except JobError as exc:
        raise click.BadParameter(str(exc).removeprefix("job key --fps: ")) from None


@click.command("init", context_settings=_CONTEXT)
@click.argument("folder", metavar="DIR", type=_PATH)
@click.option("-e", "--example", type=click.Choice(list(EXAMPLES)), default=DEFAULT_EXAMPLE, show_default=True,
              help="Which layout: " + "; ".join(f"{name}: {what}" for name, (_, what) in EXAMPLES.items()) + ".")
@reports_errors
def init(folder: Path, example: str) -> None:
    """Write DIR/job.toml, a commented job file to edit: put your inputs beside it, or change its paths.

    Example: composer init myjob --example ultralight && composer run myjob/job.toml
    """
    from composer.tools.examples import write_example

    job = write_example(folder, example)
    click.echo(f"wrote {job} ({EXAMPLES[example][1]}); edit its paths, then: composer run {job}")


@click.command("features", context_settings=_CONTEXT)
@click.argument("audio", metavar="AUDIO", type=_PATH)
@click.option("--encoder", type=_PATH, required=True, metavar="ENCODER.onnx",
              help="The audio encoder: input [1, S] mono float32 PCM in [-1, 1]; output [1, F, D] or [F, D].")
@click.option("-o", "--output", "out", type=click.Path(), required=True, metavar="FEATURES.npy",
              help="The features to write: float32 [N, g, D], g = rows-per-second / fps.")
@click.option("--fps", default="25", show_default=True, callback=_fps, help="Frame rate of the video to render.")
@click.option("--rows-per-second", type=click.IntRange(1, MAX_ROWS_PER_SECOND),
              default=FeaturesSpec.rows_per_second, show_default=True,
              help="Encoder rows per second of audio (hubert and wav2vec2: 50).")
@click.option("--sample-rate", type=click.IntRange(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE), default=FeaturesSpec.sample_rate,
              show_default=True, help="The rate the encoder takes; the audio is resampled to it.")
@click.option("--chunk-seconds", type=FiniteFloatRange(MIN_CHUNK_SECONDS, MAX_CHUNK_SECONDS),
              default=FeaturesSpec.chunk_seconds, show_default=True,
              help="Audio encoded in one call at most; longer audio goes in chunks.")
@click.option("--overlap-seconds", type=FiniteFloatRange(0, MAX_OVERLAP_SECONDS), default=FeaturesSpec.overlap_seconds,
              show_default=True, help="Context on each side of a chunk, whose rows are dropped.")
@reports_errors
def features(audio: Path, encoder: Path, out: str, fps: Fraction, rows_per_second: int, sample_rate: int,
             chunk_seconds: float, overlap_seconds: float) -> None:
    """Encode AUDIO (wav, mp3, m4a, a video's sound: any rate, any channels) into features for [features] path.

    The audio is decoded, downmixed to mono and resampled to --sample-rate; the encoder's rows are grouped
    g = rows-per-second / fps to an output frame (g must be a whole number).

    Example: composer features speech.wav --encoder hubert.onnx -o features.npy --fps 25
    """
    from composer.config.job import features_spec
    from composer.inputs.audio_features import write_features
    from composer.output.safety import check_paths, file_output

    check_paths([("input AUDIO", audio), ("input --encoder", encoder)], [file_output("-o", out)])
    spec = features_spec({"audio": str(audio), "encoder": str(encoder), "sample_rate": sample_rate,
                          "rows_per_second": rows_per_second, "chunk_seconds": chunk_seconds,
                          "overlap_seconds": overlap_seconds}, Path.cwd())
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    frames, g, width = write_features(spec, fps, target)
    click.echo(f"wrote {out}: {frames} frames x {g} rows x {width} values ({rows_per_second} rows a second at "
               f"{fps} fps)")
