"""Reports: the measuring tools' tables, as plain text for the terminal and as Markdown, and the sections of a
Markdown report (RESULTS.md) that each tool fills in.

A section is the Markdown between ``<!-- composer:NAME -->`` and ``<!-- /composer:NAME -->``.
:func:`write_section` replaces it where it stands, so regenerating one section leaves the others, and their
order, alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from composer.errors import JobError, OutputError

__all__ = ["markdown_table", "text_table", "write_section"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_ALIGN = {"l": "---", "r": "---:"}


def text_table(rows: Sequence[Sequence[str]], left: int = 0, free_last: bool = False) -> str:
    """``rows`` (the header first) as columns two spaces apart.

    Args:
        rows: the cells, row by row; every row as long as the header.
        left: how many leading columns are flush left (names); the others are flush right (figures).
        free_last: leave the last column unpadded (free text, such as a verdict or a note).
    """
    padded = len(rows[0]) - (1 if free_last else 0)
    widths = [max(len(row[k]) for row in rows) for k in range(padded)]
    lines = []
    for row in rows:
        cells = [c.ljust(w) if k < left else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join([*cells, *row[padded:]]).rstrip())
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """A Markdown table's lines; ``align`` has an ``l`` (left) or ``r`` (right) per column."""
    if len(align) != len(header) or set(align) - set(_ALIGN):
        raise ValueError(f"align {align!r} must give l or r for each of the {len(header)} columns")
    return [_markdown_row(row) for row in (header, [_ALIGN[a] for a in align], *rows)]


def _markdown_row(cells: Sequence[str]) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"  # an empty cell is "| |"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- composer:{name} -->", f"<!-- /composer:{name} -->"


def write_section(report: Path, name: str, body: str, title: str = "Results") -> Path:
    """Put ``body`` between the markers of section ``name`` in the Markdown file ``report``.

    An existing section is replaced in place; a new one is appended; a missing file is created with
    ``# title``. The file is replaced whole, never left half written.

    Raises:
        JobError: ``name`` is not a plain lower-case name.
        OutputError: the file cannot be read or written.
    """
    if not _NAME.match(name):
        raise JobError(f"report section {name!r}: use lower-case letters, digits, '-', '_' or '.'")
    report = Path(report)
    begin, end = _markers(name)
    block = f"{begin}\n{body.strip()}\n{end}"
    try:
        text = report.read_text(encoding="utf-8") if report.exists() else f"# {title}\n"
    except OSError as exc:
        raise OutputError(f"{report}: cannot read the report: {exc.strerror or exc}") from exc
    first, last = text.find(begin), text.find(end)
    if first != -1 and last > first:
        text = text[:first] + block + text[last + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    try:
        report.parent.mkdir(parents=True, exist_ok=True)
        temp = report.with_name(f".{report.name}.tmp")
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, report)
    except OSError as exc:
        raise OutputError(f"{report}: cannot write the report: {exc.strerror or exc}") from exc
    return report
