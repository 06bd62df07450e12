"""The largest values composer takes, and why: each bound is what the machine or a library composer drives
can take, or well past any use, so that a typo or a hostile job file is one line (a
:class:`~composer.errors.JobError` naming the key or option) before anything is allocated, started or read.

The job file's checks (:mod:`composer.config.checks`) and the command line's options (:mod:`composer.cli`)
both read these numbers. Nested text (TOML job files, JSON rectangles) is measured here before a parser
recurses into it: Python's parsers recurse once per level, and a file of 100,000 ``[`` would reach the
interpreter's recursion limit (or, on a thread's smaller stack, crash it).
"""

from __future__ import annotations

import re
from fractions import Fraction

from composer.errors import JobError

# Frame rates: FFmpeg keeps a rate as two 32-bit integers (AVRational), and its mp4 muxer fails to finish a
# video from about one frame in 18 hours (1/65535 fps); one frame an hour still works. No camera or display
# goes past 1000 fps.
MIN_FPS = Fraction(1, 3600)
MAX_FPS = Fraction(1000)
MAX_RATE_TERM = 2**31 - 1

# Frames per model call. On a CPU batching gains nothing past 1 and an accelerator stops gaining at tens;
# 4096 crops of 256 x 256 x 6 float32 are already 6 GiB of input buffers.
MAX_BATCH = 4096

# GPUs on one machine (CUDA device ids): servers hold 8 or 16; 64 is past any of them.
MAX_DEVICES = 64

# Threads: composite workers, model lanes (an ONNX Runtime session each), intra-op threads per lane. Each
# helps up to about one per core; 256 leaves room for a large server's cores, while ONNX Runtime asked for
# 10**6 threads exhausts the memory and crashes.
MAX_THREADS = 256
# Threads in all: ONNX Runtime's (lanes x threads).
MAX_THREADS_IN_ALL = 1024
# Video segments encoded side by side: each holds an x264 with its look-ahead frames (about 100 MB at 1080p).
MAX_ENCODERS = 64

# Frames: the longest template or output composer takes, 2**22 (46 hours at 25 fps). A landmarks folder
# without a template allocates one entry per frame up to the largest number in a file name.
MAX_FRAMES = 2**22

# The model's square crop: 8192 is H.264's widest frame (level 6.2), and a 8192 x 8192 x 6 float32 input is
# already 1.5 GiB a frame. The feathering ramp and a frame's side share the bound.
MAX_CROP = 8192
MAX_SIDE = 8192
# Feature rows per output frame (seconds of audio features at 25 rows a second: 160 s).
MAX_WINDOW = 4096
# Values in one feature row that composer live reads from its input: 64 MiB of float32, far beyond any
# conditioning, small enough to read whole.
MAX_ROW_VALUES = 2**24
# Audio features made by an encoder (docs/design.md 1.1). Rates: 8 kHz telephone speech to 384 kHz, the highest
# PCM rate audio files carry. Rows a second: hubert and wenet give 25-100; 1000 is one a millisecond.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384_000
MAX_ROWS_PER_SECOND = 1000
# Audio encoded in one call: at least a tenth of a second; at most 10 minutes (a transformer encoder's memory
# grows with the square of its input, and 10 minutes of 16 kHz float32 is already 38 MB in one tensor).
MIN_CHUNK_SECONDS = 0.1
MAX_CHUNK_SECONDS = 600.0
# Context on each side of a chunk: a minute is more than any speech encoder looks at.
MAX_OVERLAP_SECONDS = 60.0
# Channel groups stacked into the model's image input ("crop", "masked", ...).
MAX_INPUT_GROUPS = 16

# Encoder settings, from x264: its CRF scale and its presets; JPEG quality is a percentage.
MAX_QUALITY = 100
MAX_CRF = 51
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")

# Memory sizes: a petabyte, past any machine's memory, and far inside a 64-bit integer.
MAX_BYTES = 2**50

# Paths: Linux's PATH_MAX and NAME_MAX in bytes (most file systems share the name's); a longer path fails
# with "File name too long" wherever it is first opened.
MAX_PATH_BYTES = 4095
MAX_NAME_BYTES = 255

# Nesting of TOML and JSON (tables, arrays, dotted keys): composer's own files nest two deep.
MAX_DEPTH = 32
# A job file holds a few hundred bytes; reading stops past this, so a device or a huge file is refused.
MAX_JOB_BYTES = 2**20

# The measuring commands: renders per point or round, and entries in a comma-separated grid.
MAX_ROUNDS = 100
MAX_GRID = 32
# The demo: an hour at 25 fps (its features alone take 4 KiB a frame).
MAX_DEMO_FRAMES = 90_000
# Contact sheets: thumbnails per row and in all, and the sheet's side (JPEG's limit is 65,535).
MAX_COLUMNS = 64
MAX_SAMPLES = 4096
MAX_SHEET_SIDE = 65_000
MAX_SHEET_PIXELS = 2**26  # 192 MiB of BGR
# Box growth of `rects from-landmarks --margin`: ten times a box's size on every side.
MAX_MARGIN = 10.0

# Where a string, a comment or a bracket starts, and where each kind of string ends (a multi-line string's
# closing quotes may be followed by one or two quotes of its text). Each match runs forward from where the
# last one ended, so the scan takes time linear in the text however it is made.
_TOML_START = re.compile(r'"""|' + r"'''|" + r"""["'#\[\]{}]""")
_JSON_START = re.compile(r'["\[\]{}]')
_ENDS = {
    '"""': re.compile(r'(?:[^\\"]|\\[\s\S]|"(?!""))*"""(?:"{1,2}(?!"))?'),
    "'''": re.compile(r"(?:[^']|'(?!''))*'''(?:'{1,2}(?!'))?"),
    '"': re.compile(r'(?:[^"\\\n]|\\.)*"'),
    "'": re.compile(r"[^'\n]*'"),
    "json": re.compile(r'(?:[^"\\]|\\[\s\S])*"'),
}
# A dotted key of more than MAX_DEPTH parts (tomllib's time grows with the square of their number). It starts
# only where a word starts, so that a run of 100,000 digits is tried once, not once a digit.
_DOTTED = re.compile(r"(?<![\w-])[\w-]+(?:[ \t]*\.[ \t]*[\w-]+){" + str(MAX_DEPTH) + ",}")


def nesting_depth(text: str, toml: bool = True) -> int:
    """How deep the arrays, tables and dotted keys of TOML (or JSON) ``text`` nest, without parsing it.

    Brackets inside strings and comments do not count. The scan stops at a string that does not end, where the
    parser stops too; so the measure bounds what the parser will recurse into.
    """
    starts = _TOML_START if toml else _JSON_START
    depth = deepest = pos = bare_from = 0
    bare: list[str] = []  # the text outside strings and comments, where dotted keys are
    while (token := starts.search(text, pos)) is not None:
        kind, pos = token.group(), token.end()
        if kind in "[]{}":
            depth = depth + 1 if kind in "[{" else max(0, depth - 1)
            deepest = max(deepest, depth)
            continue
        bare.append(text[bare_from : token.start()])
        if kind == "#":
            newline = text.find("\n", pos)
            pos = len(text) if newline < 0 else newline
        else:
            end = _ENDS[kind if toml else "json"].match(text, pos)
            if end is None:
                break
            pos = end.end()
            bare.append("s")
        bare_from = pos
    else:
        bare.append(text[bare_from:])
    if toml and _DOTTED.search("".join(bare)):
        deepest = max(deepest, MAX_DEPTH + 1)
    return deepest


def check_nesting(text: str, where: str, toml: bool = True) -> None:
    """Raise a one-line JobError when ``text`` nests deeper than :data:`MAX_DEPTH`; ``where`` names it."""
    if nesting_depth(text, toml) > MAX_DEPTH:
        kind = "TOML" if toml else "JSON"
        raise JobError(f"{where}: {kind} nested more than {MAX_DEPTH} levels deep")
