"""composer.measure.report: aligned text tables, Markdown tables and report sections replaced in place."""

from __future__ import annotations

import pytest

from composer.errors import JobError, OutputError
from composer.measure.report import markdown_table, text_table, write_section

ROWS = [("design", "fps", "note"), ("composer", "171.7", "ok"), ("seed000-pooled", "9.5", "slow start")]


def test_text_table_aligns_names_left_and_figures_right():
    lines = text_table(ROWS, left=1).splitlines()
    assert lines[1] == "composer        171.7          ok"
    assert lines[2] == "seed000-pooled    9.5  slow start"
    assert lines[0].startswith("design          ") and lines[0].endswith("  note")


def test_text_table_right_aligns_everything_by_default():
    assert text_table(ROWS).splitlines()[1] == "      composer  171.7          ok"


def test_text_table_leaves_a_free_last_column_unpadded():
    lines = text_table(ROWS, left=1, free_last=True).splitlines()
    assert lines[1] == "composer        171.7  ok"
    assert lines[2] == "seed000-pooled    9.5  slow start"


def test_markdown_table_alignment_row():
    lines = markdown_table(ROWS[0], ROWS[1:], "lrl")
    assert lines[:2] == ["| design | fps | note |", "| --- | ---: | --- |"]
    assert lines[2] == "| composer | 171.7 | ok |" and len(lines) == 4
    assert markdown_table(("machine", ""), [("CPU", "AMD")], "ll")[0] == "| machine | |"
    with pytest.raises(ValueError, match="align"):
        markdown_table(ROWS[0], ROWS[1:], "lr")
    with pytest.raises(ValueError, match="align"):
        markdown_table(ROWS[0], ROWS[1:], "lrc")


def test_write_section_replaces_in_place_and_keeps_order(tmp_path):
    report = tmp_path / "RESULTS.md"
    write_section(report, "a", "## A\none")
    write_section(report, "b", "## B\ntwo")
    assert write_section(report, "a", "## A\nthree") == report
    text = report.read_text()
    assert text.startswith("# Results")
    assert text.index("three") < text.index("two") and "one" not in text
    assert text.count("<!-- composer:a -->") == 1 and text.count("<!-- /composer:a -->") == 1
    with pytest.raises(JobError, match="Bad Name"):
        write_section(report, "Bad Name", "x")


def test_write_section_keeps_text_outside_the_markers(tmp_path):
    report = tmp_path / "RESULTS.md"
    report.write_text("# Mine\n\nintro\n\n<!-- composer:a -->\nold\n<!-- /composer:a -->\n\noutro\n")
    write_section(report, "a", "new")
    assert report.read_text() == "# Mine\n\nintro\n\n<!-- composer:a -->\nnew\n<!-- /composer:a -->\n\noutro\n"


def test_write_section_names_the_file_it_cannot_write(tmp_path):
    folder = tmp_path / "report.md"
    folder.mkdir()  # a folder where the file should be
    with pytest.raises(OutputError, match="report.md"):
        write_section(folder, "a", "x")
