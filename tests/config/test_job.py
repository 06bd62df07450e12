"""The job file: the documented example, every failure path and command-line overrides (docs/design.md 1)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from composer.config.job import (
    CompositeSpec,
    FeaturesSpec,
    ModelSpec,
    OutputSpec,
    RunSpec,
    TemplateSpec,
    load_job,
    parse_override,
)
from composer.errors import JobError

# docs/design.md section 1, transcribed, with fps as a fraction.
FULL_JOB = """
[template]
video = "template.mp4"        # a video file; or instead:
# frames = "frames/"          # a folder of .png/.jpg, ordered by the integer in the file name
rects = "rects.json"          # one rectangle per template frame (format below)

[features]                    # optional: conditioning, one row per OUTPUT frame (e.g. audio)
path = "features.npy"         # array [N, ...], float; loaded without pickle, memory-mapped
window = 8                    # rows per window, centred on the output frame (see 3.6)

[model]
path = "model.onnx"
crop = 328                    # the rectangle is resized to crop x crop
border = 4                    # the model sees and predicts crop[border:crop-border] (both axes)
inputs = ["crop", "masked"]   # channel groups stacked into the image input, in this order
mask = [5, 5, 310, 305]       # x, y, w, h inside the model window, zeroed in the "masked" group
color = "bgr"                 # bgr | rgb: channel order the model expects (and returns)
resize_in = "linear"          # rectangle -> crop interpolation: linear | area | cubic | nearest
resize_out = "linear"         # crop -> rectangle interpolation
provider = "auto"             # auto | cpu | cuda | tensorrt

[composite]
blend = "hard"                # hard | feather
feather = 0                   # pixels of linear alpha ramp at the pasted edges when blend = "feather"

[output]
frames = "out/frames"         # folder of numbered images (000000.png, ...); optional
format = "png"                # png | jpg
quality = 95                  # jpg quality
video = "out/result.mp4"      # H.264 (yuv420p) mp4; optional
fps = "30000/1001"            # may be a fraction such as "30000/1001"
audio = "speech.wav"          # optional; muxed into the video, cut to the video's length

[run]
batch = 4                     # frames per model call
workers = 4                   # composite threads
chunk = "auto"                # template frames cached in RAM at once, or a number
memory_fraction = 0.5         # share of available memory the cache may take when chunk = "auto"
memory_budget = "1GB"         # or an absolute cap for the cache instead of the fraction (optional)
loop = "pingpong"             # pingpong | repeat | once: how template frames are reused
"""

MINIMAL = """
[template]
frames = "frames"
rects = "rects.json"

[model]
path = "model.onnx"
crop = 32
"""


def _job_file(tmp_path: Path, text: str, folder: str = "jobs") -> Path:
    root = tmp_path / folder
    root.mkdir(parents=True, exist_ok=True)
    path = root / "job.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_job_loads_into_the_documented_values(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths must follow the job file, not the current directory
    path = _job_file(tmp_path, FULL_JOB)
    base = path.parent
    job = load_job(path)
    assert job.path == path
    assert job.template == TemplateSpec(source=base / "template.mp4", rects=base / "rects.json")
    assert job.features == FeaturesSpec(path=base / "features.npy", window=8)
    assert job.model == ModelSpec(
        path=base / "model.onnx",
        crop=328,
        border=4,
        inputs=("crop", "masked"),
        mask=(5, 5, 310, 305),
        color="bgr",
        resize_in="linear",
        resize_out="linear",
        provider="auto",
    )
    assert job.model.window == 320
    assert job.composite == CompositeSpec(blend="hard", feather=0)
    assert job.output == OutputSpec(
        frames=base / "out/frames",
        format="png",
        quality=95,
        video=base / "out/result.mp4",
        fps=Fraction(30000, 1001),
        audio=base / "speech.wav",
    )
    assert job.run == RunSpec(
        batch=4, workers=4, chunk=None, memory_fraction=0.5, memory_budget=10**9, loop="pingpong"
    )
    assert job.output.fps == Fraction(30000, 1001) and isinstance(job.output.fps, Fraction)
    assert job.run.memory_budget == 1_000_000_000


def test_relative_job_path_resolves_against_its_folder(tmp_path, monkeypatch):
    _job_file(tmp_path, MINIMAL, folder="a/b")
    monkeypatch.chdir(tmp_path / "a")
    job = load_job(Path("b/job.toml"))
    assert job.template.source == tmp_path / "a/b/frames"
    assert job.model.path == tmp_path / "a/b/model.onnx"
    assert job.path.is_absolute()


def test_defaults_of_a_minimal_job(tmp_path):
    job = load_job(_job_file(tmp_path, MINIMAL))
    assert job.features is None
    assert job.model.border == 0 and job.model.inputs == ("crop",) and job.model.mask is None
    assert job.composite == CompositeSpec()
    assert job.output == OutputSpec()
    assert job.run == RunSpec()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("25", Fraction(25)),
        ('"30000/1001"', Fraction(30000, 1001)),
        ("29.97", Fraction(2997, 100)),
        ('"24"', Fraction(24)),
    ],
)
def test_fps_values(tmp_path, value, expected):
    job = load_job(_job_file(tmp_path, MINIMAL + f"[output]\nfps = {value}\n"))
    assert job.output.fps == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [('"1GB"', 10**9), ('"512MiB"', 2**29), ('"1.5 kb"', 1500), ("123456", 123456), ('"2gib"', 2 * 2**30)],
)
def test_memory_budget_values(tmp_path, value, expected):
    job = load_job(_job_file(tmp_path, MINIMAL + f"[run]\nmemory_budget = {value}\n"))
    assert job.run.memory_budget == expected


@pytest.mark.parametrize(("value", "expected"), [('"auto"', None), ("3", 3)])
def test_chunk_values(tmp_path, value, expected):
    assert load_job(_job_file(tmp_path, MINIMAL + f"[run]\nchunk = {value}\n")).run.chunk == expected


# --- failures -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("[render]\nbatch = 4\n", "[render]"),
        ("[run]\nnonsense = 1\n", "run.nonsense"),
        ('[output]\nfolder = "x"\n', "output.folder"),
        ("[composite]\nfeathering = 2\n", "composite.feathering"),
    ],
)
def test_unknown_section_or_key(tmp_path, extra, named):
    with pytest.raises(JobError) as info:
        load_job(_job_file(tmp_path, MINIMAL + extra))
    assert named in str(info.value)


def test_unknown_key_in_a_required_section(tmp_path):
    with pytest.raises(JobError, match=r"model\.size"):
        load_job(_job_file(tmp_path, MINIMAL.replace("crop = 32", "crop = 32\nsize = 3")))


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[run]\nbatch = "four"\n', "run.batch"),
        ("[run]\nbatch = 2.0\n", "run.batch"),
        ("[run]\nbatch = true\n", "run.batch"),
        ("[run]\nbatch = 0\n", "run.batch"),
        ("[run]\nworkers = -1\n", "run.workers"),
        ('[run]\nchunk = "many"\n', "run.chunk"),
        ("[run]\nmemory_fraction = 1.5\n", "run.memory_fraction"),
        ('[run]\nmemory_budget = "lots"\n', "run.memory_budget"),
        ('[run]\nloop = "bounce"\n', "run.loop"),
        ('[run]\nmode = "fast"\n', "run.mode"),
        ("[output]\nfps = true\n", "output.fps"),
        ('[output]\nfps = "fast"\n', "output.fps"),
        ("[output]\nfps = 0\n", "output.fps"),
        ('[output]\nformat = "gif"\n', "output.format"),
        ("[output]\nquality = 101\n", "output.quality"),
        ("[output]\nframes = 3\n", "output.frames"),
        ('[composite]\nblend = "soft"\n', "composite.blend"),
        ('[composite]\nblend = "feather"\n', "composite.feather"),
        ('[features]\npath = "f.npy"\nwindow = 0\n', "features.window"),
        ("run = 3\n", "run"),
    ],
)
def test_wrong_type_or_value_names_the_key(tmp_path, extra, key):
    text = extra + MINIMAL if not extra.startswith("[") else MINIMAL + extra
    with pytest.raises(JobError) as info:
        load_job(_job_file(tmp_path, text))
    assert f"job key {key}:" in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("crop = 32", 'crop = "32"', "model.crop"),
        ("crop = 32", "crop = 32\nborder = 16", "model.border"),
        ("crop = 32", 'crop = 32\ninputs = "crop"', "model.inputs"),
        ("crop = 32", 'crop = 32\ninputs = ["crop", "face"]', "model.inputs"),
        ("crop = 32", "crop = 32\ninputs = []", "model.inputs"),
        ("crop = 32", "crop = 32\nmask = [1, 2, 3]", "model.mask"),
        ("crop = 32", "crop = 32\nmask = [1, 2, 0, 3]", "model.mask"),
        ("crop = 32", 'crop = 32\ncolor = "rgba"', "model.color"),
        ("crop = 32", 'crop = 32\nprovider = "gpu"', "model.provider"),
        ("crop = 32", 'crop = 32\nresize_in = "bilinear"', "model.resize_in"),
        ('rects = "rects.json"', "rects = 5", "template.rects"),
    ],
)
def test_wrong_model_or_template_value_names_the_key(tmp_path, old, new, key):
    with pytest.raises(JobError) as info:
        load_job(_job_file(tmp_path, MINIMAL.replace(old, new)))
    assert f"job key {key}:" in str(info.value)


@pytest.mark.parametrize(
    ("remove", "named"),
    [
        ('rects = "rects.json"\n', "template.rects"),
        ('path = "model.onnx"\n', "model.path"),
        ("crop = 32\n", "model.crop"),
    ],
)
def test_missing_required_key(tmp_path, remove, named):
    with pytest.raises(JobError) as info:
        load_job(_job_file(tmp_path, MINIMAL.replace(remove, "")))
    assert named in str(info.value) and "missing" in str(info.value)


def test_missing_features_path(tmp_path):
    with pytest.raises(JobError, match=r"features\.path"):
        load_job(_job_file(tmp_path, MINIMAL + "[features]\nwindow = 8\n"))


def test_row_shape_alone_states_the_rows_of_a_live_job(tmp_path):
    job = load_job(_job_file(tmp_path, MINIMAL + "[features]\nrow_shape = [32, 16]\nwindow = 4\n"))
    assert job.features == FeaturesSpec(path=None, window=4, row_shape=(32, 16))


@pytest.mark.parametrize("value", ["[]", "[0]", "[1, 2, 3, 4, 5]", "[1.5]", "[true]", "\"32\"", "[4096, 4096, 2]"])
def test_bad_row_shape_names_the_key(tmp_path, value):
    with pytest.raises(JobError, match=r"features\.row_shape"):
        load_job(_job_file(tmp_path, MINIMAL + f"[features]\nrow_shape = {value}\n"))


@pytest.mark.parametrize("section", ["template", "model"])
def test_missing_required_section(tmp_path, section):
    text = MINIMAL.split("[model]")[0] if section == "model" else "[model]" + MINIMAL.split("[model]")[1]
    with pytest.raises(JobError, match=rf"\[{section}\]"):
        load_job(_job_file(tmp_path, text))


def test_both_template_video_and_frames(tmp_path):
    text = MINIMAL.replace('frames = "frames"', 'frames = "frames"\nvideo = "t.mp4"')
    with pytest.raises(JobError, match=r"template\.video.*template\.frames"):
        load_job(_job_file(tmp_path, text))


def test_neither_template_video_nor_frames(tmp_path):
    with pytest.raises(JobError, match="exactly one"):
        load_job(_job_file(tmp_path, MINIMAL.replace('frames = "frames"\n', "")))


@pytest.mark.parametrize(
    "text", ["[template\nvideo = 1", "a = = 1", MINIMAL + "[run]\nbatch = 4\nbatch = 5\n"]
)
def test_bad_toml(tmp_path, text):
    with pytest.raises(JobError, match="not valid TOML"):
        load_job(_job_file(tmp_path, text))


def test_missing_job_file(tmp_path):
    with pytest.raises(JobError, match="nothere.toml"):
        load_job(tmp_path / "nothere.toml")


def test_job_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "job.toml"
    path.write_bytes(b"\xff\xfe[\x00t\x00")
    with pytest.raises(JobError, match="job.toml"):
        load_job(path)


# --- overrides ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("output.frames=/tmp/x", ("output", "frames", "/tmp/x")),
        ("output.fps=30000/1001", ("output", "fps", "30000/1001")),
        ("run.batch=8", ("run", "batch", 8)),
        ("run.memory_fraction=0.25", ("run", "memory_fraction", 0.25)),
        ('model.inputs=["crop"]', ("model", "inputs", ["crop"])),
        ('run.loop="once"', ("run", "loop", "once")),
        ("run.loop=once", ("run", "loop", "once")),
        ("run.chunk=auto", ("run", "chunk", "auto")),
        ("output.video=", ("output", "video", "")),
        ("output.frames=out/frames", ("output", "frames", "out/frames")),
        (" run.batch =8", ("run", "batch", 8)),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected
    assert type(parse_override(text)[2]) is type(expected[2])


@pytest.mark.parametrize("text", ["run.batch", "batch=4", "=4", ".batch=4", "run.=4"])
def test_parse_override_refuses_malformed(text):
    with pytest.raises(JobError, match="section.key=value"):
        parse_override(text)


def _overrides(*texts: str) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for text in texts:
        section, key, value = parse_override(text)
        out.setdefault(section, {})[key] = value
    return out


def test_overrides_apply_over_the_file(tmp_path):
    path = _job_file(tmp_path, FULL_JOB)
    job = load_job(
        path,
        _overrides(
            "run.batch=8",
            "output.fps=30000/1001",
            'model.inputs=["crop"]',
            "run.chunk=3",
            "run.memory_budget=512MiB",
            "run.loop=repeat",
        ),
    )
    assert job.run.batch == 8 and job.run.chunk == 3 and job.run.memory_budget == 2**29
    assert job.run.loop == "repeat" and job.run.workers == 4
    assert job.output.fps == Fraction(30000, 1001)
    assert job.model.inputs == ("crop",)


def test_override_paths_resolve_against_the_current_directory(tmp_path, monkeypatch):
    path = _job_file(tmp_path, FULL_JOB)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    job = load_job(
        path,
        _overrides(
            "output.frames=rel/frames",
            "output.video=v.mp4",
            "model.path=../m.onnx",
            "output.audio=/abs/a.wav",
        ),
    )
    assert job.output.frames == cwd / "rel/frames"
    assert job.output.video == cwd / "v.mp4"
    assert job.model.path.resolve() == (tmp_path / "m.onnx").resolve()
    assert job.output.audio == Path("/abs/a.wav")
    # keys not overridden still follow the job file
    assert job.template.source == path.parent / "template.mp4"


def test_empty_override_switches_an_output_off(tmp_path):
    path = _job_file(tmp_path, FULL_JOB)
    job = load_job(path, _overrides("output.video=", "output.audio="))
    assert job.output.video is None and job.output.audio is None
    assert job.output.frames == path.parent / "out/frames"


def test_empty_value_for_a_required_path_is_an_error(tmp_path):
    with pytest.raises(JobError, match=r"model\.path"):
        load_job(_job_file(tmp_path, FULL_JOB), _overrides("model.path="))


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("run.nonsense=1", "run.nonsense"),
        ("render.batch=1", "[render]"),
        ("run.batch=x", "run.batch"),
        ("run.batch=0", "run.batch"),
    ],
)
def test_bad_overrides_are_job_errors(tmp_path, override, named):
    with pytest.raises(JobError) as info:
        load_job(_job_file(tmp_path, FULL_JOB), _overrides(override))
    assert named in str(info.value)


def test_override_of_a_missing_optional_section(tmp_path):
    job = load_job(_job_file(tmp_path, MINIMAL), _overrides("composite.blend=feather", "composite.feather=3"))
    assert job.composite == CompositeSpec(blend="feather", feather=3)


def test_overrides_do_not_touch_the_file(tmp_path):
    path = _job_file(tmp_path, FULL_JOB)
    load_job(path, _overrides("run.batch=8"))
    assert path.read_text(encoding="utf-8") == FULL_JOB
    assert load_job(path).run.batch == 4


def test_job_with_run_copies(tmp_path):
    job = load_job(_job_file(tmp_path, FULL_JOB))
    other = job.with_run(batch=1, chunk=2)
    assert (other.run.batch, other.run.chunk) == (1, 2)
    assert (job.run.batch, job.run.chunk) == (4, None)
    assert other.model == job.model


@pytest.mark.parametrize(
    ("new", "key"),
    [
        ('io_binding = "yes"', "model.io_binding"),
        ("io_binding = 1", "model.io_binding"),
        ("device_id = -1", "model.device_id"),
        ("device_id = 64", "model.device_id"),
        ('cudnn_conv_algo_search = "fast"', "model.cudnn_conv_algo_search"),
        ("gpu_memory_limit = 0", "model.gpu_memory_limit"),
        ('fp16 = "true"', "model.fp16"),
        ("cache = 3", "model.cache"),
        ("trt_batches = [1, 4]", "model.trt_batches"),
        ("trt_batches = [4, 2, 8]", "model.trt_batches"),
        ("trt_batches = [0, 1, 1]", "model.trt_batches"),
        ("trt_batches = [1, 2, 4]\n[run]\nbatch = 8", "model.trt_batches"),
    ],
)
def test_wrong_gpu_value_names_the_key(tmp_path, new, key):
    with pytest.raises(JobError) as info:
        load_job(_job_file(tmp_path, MINIMAL + new + "\n"))
    assert f"job key {key}:" in str(info.value) and "\n" not in str(info.value)


def test_gpu_keys_load(tmp_path):
    text = MINIMAL + ('io_binding = true\ndevice_id = 1\ncudnn_conv_algo_search = "exhaustive"\n'
                      'gpu_memory_limit = "8GiB"\nfp16 = true\ncache = "engines"\ntrt_batches = [1, 4, 8]\n')
    model = load_job(_job_file(tmp_path, text)).model
    assert (model.io_binding, model.device_id, model.cudnn_conv_algo_search) == (True, 1, "exhaustive")
    assert (model.gpu_memory_limit, model.fp16, model.trt_batches) == (8 * 2**30, True, (1, 4, 8))
    assert model.cache == tmp_path / "jobs" / "engines"
    defaults = load_job(_job_file(tmp_path, MINIMAL)).model
    assert (defaults.io_binding, defaults.cudnn_conv_algo_search, defaults.cache) == (None, "heuristic", None)
