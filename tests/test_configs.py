"""The example job files in configs/ stay valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.config.job import load_job

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_example_job_loads(path):
    job = load_job(path)
    assert job.model.window == job.model.crop - 2 * job.model.border
    assert job.template.source.parent == path.parent.absolute()


def test_there_are_examples():
    assert len(CONFIGS) >= 3
