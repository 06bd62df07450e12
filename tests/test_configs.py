"""The example job files that ship with composer (composer/examples/) stay valid, and `composer init` writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

import composer
from composer.config.job import load_job

CONFIGS = sorted((Path(composer.__file__).parent / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_example_job_loads(path):
    job = load_job(path)
    assert job.model.window == job.model.crop - 2 * job.model.border
    assert job.template.source.parent == path.parent.absolute()


def test_there_are_examples():
    assert len(CONFIGS) >= 4


def test_every_example_file_is_named_and_every_name_has_a_file():
    from composer.tools.examples import EXAMPLES

    assert sorted(file for file, _ in EXAMPLES.values()) == sorted(p.name for p in CONFIGS)


def test_the_package_data_holds_the_examples():
    text = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert '"examples/*.toml"' in text
