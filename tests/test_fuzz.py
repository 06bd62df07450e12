"""Fuzz: random and boundary values at every key of the job file (through ``--set`` and through a written job
file) and at every numeric option of every command, through click's CliRunner.

Every run must end in exit 0 (the value is valid) or 2 (it is not), never 1 or a traceback; a refusal is exactly
one line, ``composer: error: ...``; and each run takes seconds. Bad values are refused before anything renders,
so most runs replace the render with a stub that only records that it was reached; the values at the bounds
and a seeded sample of the accepted random values render the tiny job for real. Seeded, about 20 s in all.
"""

from __future__ import annotations

import json
import random
import string
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result

from composer.cli import main as cli_main
from composer.config.schema import PATH_KEYS
from composer.config.schema import SCHEMA as _SCHEMA
from tests.conftest import job_factory

SEED = 25  # issue 25
RANDOM_PER_KEY = 12
REAL_RENDERS_OF_RANDOM_VALUES = 8
SECONDS = 10  # the most one run may take (a refusal takes milliseconds; a real render of the tiny job, < 1 s)

KEYS = [(section, key) for section, keys in _SCHEMA.items() for key in keys]

# TOML texts: numbers at and past every bound, past 64 bits, non-finite, of thousands of digits; wrong types.
BOUNDARY = [
    "0", "-1", "1", "2", "51", "52", "100", "101", "128", "129", "256", "257", "1000", "1001", "4096", "4097",
    "8192", "8193", "4194304", "4194305", str(2**31), str(2**50), str(2**50 + 1), str(2**63), str(2**64),
    str(2**70), "1" + "0" * 30, "9" * 5000, "-" + "9" * 40,
    "inf", "-inf", "nan", "1e400", "-1e400", "1e308", "1e-320", "-0.0", "0.5", "1.0", "29.97",
    "true", "false", '""', '"x"', '"auto"', '"1GB"', '"9999999999999999999999TB"', '"' + "9" * 400 + 'GB"',
    '"30000/1001"', '"1/3600"', '"1/65535"', '"1/0"', '"1e999999999"', '"a\\u0000b"', '"' + "y" * 300 + '"',
    "[]", "[1, 2, 3, 4]", "[0, 0, 1, 1]", "[0, 0, 99, 99]", '["crop"]', '["crop", "masked", "crop"]',
    "{a = 1}", "{}", "[" * 64 + "]" * 64, "{a = " * 40 + "1" + "}" * 40, "1979-05-27T07:32:00Z", "07:32:00",
]
# Strings that stay inside the test's folder: a random path could name "/" or "~".
PATH_STRINGS = ('"x"', '""', '"a\\u0000b"', '"' + "p" * 300 + '"', '"' + "d/" * 2100 + '"', '"."')

# Values at the bounds that render the tiny job for real, with the exit status each must give.
AT_THE_BOUNDS = [
    ("output", "fps", '"1/3600"', 0), ("output", "fps", "1000", 0), ("output", "fps", "29.97", 0),
    ("run", "batch", "4096", 0), ("run", "workers", "256", 0), ("run", "lanes", "256", 0),
    ("run", "threads", "256", 0), ("run", "encoders", "64", 0),
    ("run", "chunk", "4194304", 0), ("run", "memory_budget", str(2**50), 0), ("run", "memory_fraction", "1", 0),
    ("output", "crf", "0", 0), ("output", "crf", "51", 0), ("output", "quality", "0", 0),
    ("output", "preset", '"placebo"', 0), ("composite", "feather", "8192", 0),
    ("model", "crop", "8192", 2), ("features", "window", "4096", 2),  # the tiny model does not fit them
]


def _random_value(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return str(rng.choice((-1, 1)) * rng.getrandbits(rng.randint(1, 80)))
    if kind == 1:
        return f"{rng.choice(('', '-'))}{rng.uniform(1, 10):.4f}e{rng.randint(-400, 400)}"
    if kind == 2:
        return json.dumps("".join(rng.choice(string.printable) for _ in range(rng.randint(0, 12))))
    if kind == 3:
        return "[" + ", ".join(str(rng.randint(-5, 2**40)) for _ in range(rng.randint(0, 6))) + "]"
    if kind == 4:
        depth = rng.randint(1, 300)
        return "[" * depth + "]" * depth
    if kind == 5:
        return str(rng.randint(0, 300))
    return rng.choice(("true", "false", "{}", "{a = 1}", '"auto"', "1979-05-27", "nan", "-inf", '"1/2"'))


def _values(section: str, key: str) -> list[str]:
    rng = random.Random(f"{SEED}:{section}.{key}")
    random_values = [_random_value(rng) for _ in range(RANDOM_PER_KEY)]
    if f"{section}.{key}" in PATH_KEYS:
        return [v for v in BOUNDARY + random_values if not v.startswith('"')] + list(PATH_STRINGS)
    return BOUNDARY + random_values


def _assert_clean(result: Result, seconds: float, what: str) -> None:
    assert "Traceback" not in result.output, (what, result.output)
    assert result.exit_code in (0, 2), (what, result.exit_code, result.output, result.exception)
    if result.exit_code:
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("composer: error: "), (what, result.output)
        assert len(lines[0]) < 600, (what, lines[0])
    assert seconds < SECONDS, (what, seconds)


def _invoke(args: list[str], what: str) -> Result:
    start = time.monotonic()
    result = CliRunner().invoke(cli_main.main, args)
    _assert_clean(result, time.monotonic() - start, what)
    return result


@pytest.fixture
def tiny_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three 64 x 48 template frames, four output frames, written as images and as a video. The test runs in
    tmp_path: a path given with --set is relative to the current directory."""
    monkeypatch.chdir(tmp_path)
    return job_factory(tmp_path)(frames=3, outputs=4, nulls=(1,), output={"video": "out.mp4"})


class RenderStub:
    """Stands in for the render (everything after the job is loaded) and records the jobs it is given; with
    ``for_real`` set it renders."""

    def __init__(self, real: Any) -> None:
        self.real, self.jobs, self.for_real = real, [], False

    def __call__(self, job: Any, *args: Any, **kwargs: Any) -> Any:
        if self.for_real:
            return self.real(job, *args, **kwargs)
        self.jobs.append(job)
        return SimpleNamespace(frames=0, seconds=1.0, fps=0.0, peak_rss=0)


@pytest.fixture
def stub_render(monkeypatch: pytest.MonkeyPatch) -> RenderStub:
    stub = RenderStub(cli_main._render)
    monkeypatch.setattr(cli_main, "_render", stub)
    return stub


def _with_value(text: str, section: str, key: str, value: str) -> str:
    """The job file's text with ``section.key = value`` (replacing the key, or added to its section)."""
    lines, current, done = text.splitlines(), None, False
    for n, line in enumerate(lines):
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and line.split("=")[0].strip() == key:
            lines[n], done = f"{key} = {value}", True
    if not done:
        header = lines.index(f"[{section}]") if f"[{section}]" in lines else None
        if header is None:
            lines += [f"[{section}]", f"{key} = {value}"]
        else:
            lines.insert(header + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("section", list(_SCHEMA))
def test_every_key_through_set(tiny_job, stub_render, section):
    accepted = []
    for key in _SCHEMA[section]:
        for value in _values(section, key):
            what = f"--set {section}.{key}={value[:60]}"
            result = _invoke(["run", str(tiny_job), "-q", "--set", f"{section}.{key}={value}"], what)
            if result.exit_code == 0:
                accepted.append((key, value))
    assert len(stub_render.jobs) == len(accepted)
    # A sample of the accepted values renders for real.
    sample = random.Random(f"{SEED}:{section}").sample(accepted, min(REAL_RENDERS_OF_RANDOM_VALUES, len(accepted)))
    for key, value in sample:
        _real_render(stub_render, tiny_job, section, key, value, None)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("section", list(_SCHEMA))
def test_every_key_in_a_written_job_file(tiny_job, stub_render, section):
    text = tiny_job.read_text()
    fuzzed = tiny_job.with_name("fuzzed.toml")
    for key in _SCHEMA[section]:
        for value in _values(section, key):
            fuzzed.write_text(_with_value(text, section, key, value))
            _invoke(["run", str(fuzzed), "-q"], f"{section}.{key} = {value[:60]}")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "extra",
    [
        "[run]\nbatch = " + "[" * 100_000 + "]" * 100_000,
        "[extra]\n" + "a = {b = " * 5_000 + "1" + "}" * 5_000,
        "[run]\nbatch" + ".a" * 100_000 + " = 1",
        "[run" + ".a" * 50_000 + "]",
        "[" * 20_000,
        "x = " + "9" * 100_000,
        "# " + "z" * 2**21,
    ],
    ids=["arrays", "tables", "dotted-key", "dotted-table", "unclosed", "digits", "huge"],
)
def test_a_hostile_job_file_is_one_line(tiny_job, stub_render, extra):
    fuzzed = tiny_job.with_name("hostile.toml")
    fuzzed.write_text(tiny_job.read_text() + extra + "\n")
    result = _invoke(["run", str(fuzzed), "-q"], extra[:40])
    assert result.exit_code == 2 and not stub_render.jobs


def _real_render(stub: RenderStub, job: Path, section: str, key: str, value: str, code: int | None) -> None:
    stub.for_real = True
    try:
        result = _invoke(["run", str(job), "-q", "--set", f"{section}.{key}={value}"], f"{section}.{key}={value}")
    finally:
        stub.for_real = False
    if code is not None:
        assert result.exit_code == code, (section, key, value, result.output)


@pytest.mark.timeout(120)
def test_the_bounds_render(tiny_job, stub_render):
    for section, key, value, code in AT_THE_BOUNDS:
        _real_render(stub_render, tiny_job, section, key, value, code)


# Every numeric option of every command: the values tried, and a run of the command that takes them. The
# library behind each command is stubbed: these runs are about the options.
OPTION_VALUES = [
    "0", "-1", "1", "2", "3", "64", "65", "100", "101", "256", "257", "4096", "4097", "8192", "8193", "90000",
    "90001", "4194304", "4194305", str(2**31), str(2**63), str(2**64), str(2**70), "9" * 5000, "1e400", "inf",
    "-inf", "nan", "1.5", "-0.4", "-0.5", "10", "10.5", "", "abc", "0x10", " 3", "1,2", "1,2,4,8,16",
    ",".join(["1"] * 40), ",".join(str(n) for n in range(1, 34)), "1,0", "1," + str(2**70), "1,-2", ",",
    "64x64", "8192x64", "8194x64", "65x64", "0x0", "-64x64", "64x64x64", "1e400x64", "9" * 5000 + "x64",
]


def _commands(tmp_path: Path, job: Path) -> dict[str, list[str]]:
    lms = tmp_path / "lms"
    lms.mkdir(exist_ok=True)
    (lms / "0.lms").write_text("".join(f"{i} {i + 1}\n" for i in range(60)))
    out = str(tmp_path / "out")
    sheet = ["rects", "show", str(job.parent / "template"), str(job.parent / "rects.json"), "-o", out + ".png"]
    return {
        "run -b": ["run", str(job), "-q", "-b"], "run -w": ["run", str(job), "-q", "-w"],
        "run -c": ["run", str(job), "-q", "-c"],
        "demo -n": ["demo", "--out", out, "-q", "--size", "64x64", "-n"],
        "demo --size": ["demo", "--out", out, "-q", "--size"],
        "rects show --columns": [*sheet, "--columns"], "rects show --samples": [*sheet, "--samples"],
        "rects show --width": [*sheet, "--width"],
        "from-landmarks -n": ["rects", "from-landmarks", str(lms), "-o", out + ".json", "-n"],
        "from-landmarks --smooth": ["rects", "from-landmarks", str(lms), "-o", out + ".json", "--smooth"],
        "from-landmarks --margin": ["rects", "from-landmarks", str(lms), "-o", out + ".json", "--margin"],
        "profile -n": ["profile", str(job), "-n"], "profile -b": ["profile", str(job), "-b"],
        "profile -w": ["profile", str(job), "-w"], "profile --rounds": ["profile", str(job), "--rounds"],
        "sweep -n": ["sweep", str(job), "-q", "-n"], "sweep --batch": ["sweep", str(job), "-q", "--batch"],
        "sweep --workers": ["sweep", str(job), "-q", "--workers"],
        "sweep --lanes": ["sweep", str(job), "-q", "--lanes"],
        "sweep --threads": ["sweep", str(job), "-q", "--threads"],
        "sweep --repeats": ["sweep", str(job), "-q", "--repeats"],
        "sweep --confirm": ["sweep", str(job), "-q", "--confirm"],
    }


@pytest.fixture
def stub_commands(monkeypatch: pytest.MonkeyPatch, stub_render: RenderStub, tiny_job: Path) -> None:
    result = SimpleNamespace(text=lambda: "measured", to_json=lambda: {})
    monkeypatch.setattr("composer.measure.profile.profile_job", lambda *a, **k: result)
    monkeypatch.setattr("composer.measure.sweep.run_sweep", lambda *a, **k: result)
    monkeypatch.setattr("composer.tools.demo.make_demo_assets", lambda *a, **k: tiny_job)
    monkeypatch.setattr("composer.tools.contact_sheet.contact_sheet", lambda *a, **k: (1, 1))
    monkeypatch.setattr("composer.inputs.landmarks.read_landmarks", lambda *a, **k: [])
    monkeypatch.setattr("composer.inputs.landmarks.boxes_from_landmarks", lambda *a, **k: [])
    monkeypatch.setattr("composer.inputs.landmarks.write_rects", lambda *a, **k: None)


@pytest.mark.timeout(120)
def test_every_numeric_option_of_every_command(tmp_path, tiny_job, stub_commands):
    for name, args in _commands(tmp_path, tiny_job).items():
        rng = random.Random(f"{SEED}:{name}")
        values = OPTION_VALUES + [_random_value(rng).strip('"') for _ in range(RANDOM_PER_KEY)]
        codes = [_invoke([*args, value], f"{name} {value[:40]}").exit_code for value in values]
        assert 0 in codes and 2 in codes, name  # each option takes some values and refuses others
