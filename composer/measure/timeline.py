"""A render's spans as a Chrome trace (Trace Event Format, opens in Perfetto) and as a PNG timeline.

The trace has one track per thread (preloader, batcher, model, each composite worker, writer; or preloader and
the segment renderer's lanes) with a slice
per piece of work, and each frame's latency (batched until written) as an async slice. The PNG draws the
same tracks, coloured by stage, for the whole run and zoomed on a few model calls in the middle of it: the
picture of the CPU stages overlapping the model that seed 001 drew by hand.

The picture needs matplotlib (``pip install matplotlib``); without it :func:`draw_timeline` returns
None and the trace is still written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from composer.errors import OutputError
from composer.runtime.trace import NullTracer, Span

__all__ = ["MATPLOTLIB_MISSING", "STAGE_COLOURS", "chrome_trace", "draw_timeline", "have_matplotlib",
           "picture_path", "save_trace", "write_chrome_trace"]

MATPLOTLIB_MISSING = "matplotlib is not installed, so no picture was drawn: pip install matplotlib"

# One colour per stage, the same in every picture.
STAGE_COLOURS = {
    "decode": "#4e79a7",
    "crop": "#76b7b2",
    "prepare": "#59a14f",
    "infer": "#e15759",
    "composite": "#f28e2b",
    "write_image": "#b07aa1",
    "write_video": "#9c755f",
}
_OTHER_COLOUR = "#bab0ac"
_ASYNC_STAGES = frozenset({"latency"})  # spans that overlap each other on one thread: async slices
# Thread order in the trace and the picture: the order frames flow through the stages.
_THREAD_ORDER = ("preload", "batch", "model", "segments", "composite", "write")
_PROCESS_ID = 1


def _thread_rank(name: str) -> tuple[int, int, str]:
    short = name.removeprefix("composer-")
    for rank, prefix in enumerate(_THREAD_ORDER):
        if short.startswith(prefix):
            digits = re.findall(r"\d+", short)
            return rank, int(digits[-1]) if digits else 0, name
    return len(_THREAD_ORDER), 0, name


def _threads(spans: Iterable[Span]) -> list[str]:
    return sorted({s.thread for s in spans if s.stage not in _ASYNC_STAGES}, key=_thread_rank)


def chrome_trace(spans: Sequence[Span], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spans as a Trace Event Format object: ``{"traceEvents": [...], ...}``.

    Work spans become complete events (``"ph": "X"``) on their thread's track, named by stage; latency spans
    become async slices (``"b"``/``"e"``) with the frame as id. Times are microseconds from the first span.
    """
    if not spans:
        return {"traceEvents": [], "displayTimeUnit": "ms", "otherData": metadata or {}}
    origin = min(s.start for s in spans)
    threads = _threads(spans) + sorted({s.thread for s in spans} - set(_threads(spans)))
    tids = {name: index + 1 for index, name in enumerate(threads)}
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": _PROCESS_ID, "args": {"name": "composer"}},
    ]
    for name, tid in tids.items():
        events.append({"name": "thread_name", "ph": "M", "pid": _PROCESS_ID, "tid": tid,
                       "args": {"name": name.removeprefix("composer-")}})
        events.append({"name": "thread_sort_index", "ph": "M", "pid": _PROCESS_ID, "tid": tid,
                       "args": {"sort_index": tid}})
    for span in sorted(spans, key=lambda s: s.start):
        ts = (span.start - origin) * 1e6
        args = {"frame": span.frame, "count": span.count}
        base = {"name": span.stage, "cat": span.stage, "pid": _PROCESS_ID, "tid": tids[span.thread]}
        if span.stage in _ASYNC_STAGES:
            ident = f"{span.stage}-{span.frame}"
            events.append({**base, "ph": "b", "ts": ts, "id": ident, "args": args})
            events.append({**base, "ph": "e", "ts": (span.end - origin) * 1e6, "id": ident})
        else:
            events.append({**base, "ph": "X", "ts": ts, "dur": max(0.0, (span.end - span.start) * 1e6),
                           "args": args})
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": metadata or {}}


def write_chrome_trace(spans: Sequence[Span], path: Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write :func:`chrome_trace` of ``spans`` to ``path`` as JSON.

    Raises:
        OutputError: the file cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(chrome_trace(spans, metadata), separators=(",", ":")) + "\n")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the trace: {exc.strerror or exc}") from exc
    return path


def have_matplotlib() -> bool:
    """Whether matplotlib can be imported (the optional ``report`` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _zoom_window(spans: Sequence[Span], calls: int = 4) -> tuple[float, float] | None:
    """A few consecutive model calls from the middle of the run, where the stages are in steady state."""
    infers = sorted((s for s in spans if s.stage == "infer"), key=lambda s: s.start)
    if len(infers) < 3:
        return None
    first = max(0, len(infers) // 2 - calls // 2)
    last = min(len(infers) - 1, first + calls - 1)
    return infers[first].start, infers[last].end


def draw_timeline(spans: Sequence[Span], path: Path, title: str = "") -> Path | None:
    """Draw the spans as a PNG: one row per thread, one bar per span, coloured by stage.

    The upper panel shows the whole run; the lower one zooms on four model calls in its middle, where the
    overlap of the CPU stages with the model shows. Returns ``path``, or None when matplotlib is missing or
    there is nothing to draw.

    Raises:
        OutputError: the picture cannot be written.
    """
    if not have_matplotlib():
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    work = [s for s in spans if s.stage not in _ASYNC_STAGES]
    if not work:
        return None
    threads = _threads(work)
    origin = min(s.start for s in work)
    zoom = _zoom_window(work)
    panels = [(None, "whole run")] + ([(zoom, "zoom: four model calls mid-run")] if zoom else [])
    figure = Figure(figsize=(12, 0.45 * len(threads) * len(panels) + 1.6 * len(panels)), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (window, label) in zip(axes, panels):
        for row, thread in enumerate(threads):
            mine = [s for s in work if s.thread == thread]
            if window is not None:
                mine = [s for s in mine if s.end >= window[0] and s.start <= window[1]]
            by_stage: dict[str, list[tuple[float, float]]] = {}
            for s in mine:
                by_stage.setdefault(s.stage, []).append((s.start - origin, max(s.end - s.start, 1e-6)))
            for stage, bars in by_stage.items():
                ax.broken_barh(bars, (row - 0.4, 0.8), facecolors=STAGE_COLOURS.get(stage, _OTHER_COLOUR),
                               linewidth=0)
        ax.set_yticks(range(len(threads)))
        ax.set_yticklabels([t.removeprefix("composer-") for t in threads])
        ax.set_ylim(len(threads) - 0.5, -0.5)
        if window is not None:
            ax.set_xlim(window[0] - origin, window[1] - origin)
        ax.set_xlabel("seconds from the first span")
        ax.set_title(label, fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
    present = [stage for stage in STAGE_COLOURS if any(s.stage == stage for s in work)]
    present += sorted({s.stage for s in work} - set(STAGE_COLOURS))
    handles = [Patch(color=STAGE_COLOURS.get(stage, _OTHER_COLOUR), label=stage) for stage in present]
    height = figure.get_figheight()
    top = 1 - (0.62 if title else 0.36) / height  # room for the title and the legend, in figure fractions
    if title:
        figure.suptitle(title, fontsize=11, y=1 - 0.08 / height, va="top")
    figure.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, top + 0.3 / height),
                  ncol=len(handles), fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, top))
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the timeline: {exc.strerror or exc}") from exc
    return path


def save_trace(tracer: NullTracer, path: Path, title: str = "",
               metadata: dict[str, Any] | None = None) -> tuple[Path, Path | None]:
    """Write a tracer's spans as a Chrome trace at ``path`` and a PNG timeline beside it (``.png``).

    Returns the trace's path and the picture's, which is None without matplotlib.

    Raises:
        OutputError: a file cannot be written.
    """
    spans: list[Span] = list(getattr(tracer, "spans", []))
    trace = write_chrome_trace(spans, path, metadata)
    return trace, draw_timeline(spans, picture_path(trace), title)


def picture_path(trace: Path) -> Path:
    """Where the PNG timeline of the trace at ``trace`` goes: beside it, with the suffix ``.png``."""
    trace = Path(trace)
    return trace.with_name(trace.name + ".png") if trace.suffix.lower() == ".png" else trace.with_suffix(".png")
