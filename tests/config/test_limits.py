"""Every number of the job file is bounded (composer.config.limits): each bad value is one JobError naming its
key, before anything is allocated; nesting and huge files are refused before the TOML parser reads them."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from composer.config.checks import parse_frame_size, parse_size
from composer.config.job import load_job, parse_override
from composer.config.limits import MAX_DEPTH, X264_PRESETS, nesting_depth
from composer.errors import JobError

MINIMAL = """
[template]
frames = "frames"
rects = "rects.json"

[features]
path = "features.npy"

[model]
path = "model.onnx"
crop = 32
"""


def _job(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _refused(tmp_path: Path, section: str, key: str, value: object) -> str:
    """The one-line message of loading MINIMAL with ``section.key = value`` (given as --set would)."""
    with pytest.raises(JobError) as info:
        load_job(_job(tmp_path, MINIMAL), {section: {key: value}})
    message = str(info.value)
    assert "\n" not in message and len(message) < 300, message
    return message


BAD = [
    # frame rates: infinite, NaN, past 1000 fps, past a 32-bit time base, negative, a bool, exponents
    ("output", "fps", float("inf")),
    ("output", "fps", float("nan")),
    ("output", "fps", 1e308),
    ("output", "fps", 10**30),
    ("output", "fps", "1001/1"),
    ("output", "fps", "1/3000000000"),
    ("output", "fps", "1/65535"),  # the mp4 muxer failed to finish the video
    ("output", "fps", 0.0001),
    ("output", "fps", "1e999999999"),
    ("output", "fps", -25),
    ("output", "fps", True),
    # counts: past the bound, past 64 bits, floats, bools, NaN
    ("run", "batch", 10**12),
    ("run", "batch", 2**70),
    ("run", "batch", 4097),
    ("run", "batch", 1e400),
    ("run", "batch", True),
    ("run", "batch", float("nan")),
    ("run", "workers", 10**6),
    ("run", "lanes", 257),
    ("run", "threads", 10**6),
    ("run", "encoders", 10**5),
    ("run", "chunk", 2**64),
    ("features", "window", 10**9),
    # geometry and encoder settings
    ("model", "crop", 60000),
    ("model", "crop", 1.5),
    ("model", "border", 2**63),
    ("model", "mask", [0, 0, 33, 4]),
    ("model", "mask", [2**70, 0, 1, 1]),
    ("model", "inputs", ["crop"] * 17),
    ("composite", "feather", 10**9),
    ("output", "quality", -1),
    ("output", "quality", 101),
    ("output", "crf", 52),
    ("output", "crf", False),
    ("output", "preset", "fastest"),
    ("output", "preset", 3),
    # memory
    ("run", "memory_fraction", float("nan")),
    ("run", "memory_fraction", float("inf")),
    ("run", "memory_fraction", 0),
    ("run", "memory_budget", 2**51),
    ("run", "memory_budget", "9" * 400 + "GB"),
    ("run", "memory_budget", "1e400"),
    ("run", "memory_budget", True),
    ("run", "memory_budget", [1]),
    # paths no file system takes: ValueError (NUL) and OSError (too long) escaped as tracebacks
    ("template", "rects", "rects\0.json"),
    ("output", "video", "v" * 300 + ".mp4"),
    ("model", "path", "d/" * 3000 + "model.onnx"),
]


@pytest.mark.parametrize(("section", "key", "value"), BAD, ids=[f"{s}.{k}={v!r:.20}" for s, k, v in BAD])
def test_a_bad_number_is_one_line_naming_its_key(tmp_path, section, key, value):
    assert f"job key {section}.{key}:" in _refused(tmp_path, section, key, value)


@pytest.mark.parametrize(
    ("section", "key", "value", "wanted"),
    [
        ("output", "fps", "30000/1001", Fraction(30000, 1001)),
        ("output", "fps", 29.97, Fraction(2997, 100)),
        ("output", "fps", 1000, Fraction(1000)),
        ("output", "fps", "1/3600", Fraction(1, 3600)),
        ("output", "fps", " 24 ", Fraction(24)),
        ("run", "batch", 4096, 4096),
        ("run", "threads", 256, 256),
        ("run", "memory_budget", 2**50, 2**50),
        ("run", "memory_budget", "512MiB", 2**29),
        ("model", "mask", [0, 0, 32, 32], (0, 0, 32, 32)),
        ("output", "preset", "placebo", "placebo"),
        ("output", "crf", 51, 51),
    ],
)
def test_the_bounds_themselves_are_accepted(tmp_path, section, key, value, wanted):
    job = load_job(_job(tmp_path, MINIMAL), {section: {key: value}})
    assert getattr(getattr(job, section), key) == wanted


def test_every_x264_preset_is_accepted(tmp_path):
    for preset in X264_PRESETS:
        assert load_job(_job(tmp_path, MINIMAL), {"output": {"preset": preset}}).output.preset == preset


def test_the_mask_must_lie_inside_the_model_window(tmp_path):
    text = MINIMAL.replace("crop = 32", "crop = 32\nborder = 4\nmask = [20, 0, 5, 10]")
    with pytest.raises(JobError, match=r"job key model\.mask: .*24 x 24 model window"):
        load_job(_job(tmp_path, text))


@pytest.mark.parametrize(
    "value",
    ["1e400", "inf", "nan", "-inf", str(2**70), "9" * 5000, "[" * 10_000 + "]" * 10_000, "{a=" * 100 + "1" + "}" * 100,
     "true", '"many"', "[1, 2]", "{a = 1}"],
)
def test_set_values_go_through_the_same_checks(tmp_path, value):
    with pytest.raises(JobError) as info:
        section, key, parsed = parse_override(f"run.batch={value}")
        load_job(_job(tmp_path, MINIMAL), {section: {key: parsed}})
    assert "run.batch" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "extra",
    [
        "[run]\nbatch = " + "[" * 100_000 + "]" * 100_000 + "\n",
        "[extra]\nx = " + "{a = " * 5_000 + "1" + "}" * 5_000 + "\n",
        "[run]\nbatch" + ".a" * 100_000 + " = 1\n",
        "[run" + ".a" * 100_000 + "]\n",
    ],
    ids=["arrays", "inline-tables", "dotted-key", "dotted-table"],
)
@pytest.mark.timeout(20)
def test_deep_nesting_is_refused_before_parsing(tmp_path, extra):
    with pytest.raises(JobError, match=rf"TOML nested more than {MAX_DEPTH} levels deep"):
        load_job(_job(tmp_path, MINIMAL + extra))


def test_a_number_of_thousands_of_digits_is_one_line(tmp_path):
    with pytest.raises(JobError, match=r"job\.toml: not valid TOML: .*4300 digits"):
        load_job(_job(tmp_path, MINIMAL + "[run]\nbatch = " + "9" * 5000 + "\n"))


def test_a_huge_or_endless_job_file_is_refused(tmp_path):
    with pytest.raises(JobError, match="a job file is at most 1024 KiB"):
        load_job(_job(tmp_path, MINIMAL + "#" * 2**21 + "\n"))
    if Path("/dev/zero").exists():
        with pytest.raises(JobError, match="a job file is at most"):
            load_job(Path("/dev/zero"))


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ('a = [[1], {b = [2]}]', 3),
        ('a = "[[[[[["\nb = \'[[[[\'  # [[[[[\n', 0),
        ('a = """\n[[[[\\"""[[[["""\nb = [1]', 1),
        ("a = '''[[[[''''\nb = [[1]]", 2),
        ('[x.y]\nz = 1', 1),
    ],
)
def test_nesting_depth_skips_strings_and_comments(text, depth):
    assert nesting_depth(text) == depth


def test_nesting_depth_of_json():
    assert nesting_depth('[{"a": "[[[[\\"[["}, [1]]', toml=False) == 2
    assert nesting_depth("[" * 40 + "]" * 40, toml=False) == 40


def test_sizes_and_frame_sizes_refuse_what_they_cannot_hold():
    with pytest.raises(ValueError):
        parse_size("9" * 400 + "GB")  # float("9" * 400) is inf; int(inf) raised OverflowError
    with pytest.raises(ValueError, match="at most 8192"):
        parse_frame_size("100000x720")
    with pytest.raises(ValueError, match="expected WIDTHxHEIGHT"):
        parse_frame_size("9" * 5000 + "x720")


@pytest.mark.parametrize(
    ("run", "key"),
    [
        ({"lanes": 256, "threads": 256}, "run.threads"),  # 65,536 ONNX Runtime threads
        ({"lanes": 5, "threads": 205}, "run.threads"),
    ],
)
def test_threads_in_all_are_bounded_too(tmp_path, run, key):
    with pytest.raises(JobError, match=rf"job key {key}: .* at most 1024 threads in all"):
        load_job(_job(tmp_path, MINIMAL), {"run": run})


def test_threads_in_all_up_to_the_bound(tmp_path):
    run = {"lanes": 4, "threads": 256, "encoders": 8}
    job = load_job(_job(tmp_path, MINIMAL), {"run": run})
    assert (job.run.lanes, job.run.threads, job.run.encoders) == (4, 256, 8)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "text",
    ['"' + '\\"' * 200_000, '"""' + '\\"' * 200_000, "'''" + "''a" * 200_000, "x = " + "9" * 10**6,
     '"a"' * 200_000, "a." * 200_000],
    ids=["escaped-quotes", "multi-line", "literal", "digits", "strings", "dots"],
)
def test_nesting_depth_takes_linear_time(text):
    # A regular expression over the whole text took minutes on unclosed strings of escaped quotes
    nesting_depth(text)
    nesting_depth(text, toml=False)
