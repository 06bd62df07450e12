"""``[run] memory_budget`` holds for any layout: real renders in fresh processes, their peak RSS measured.

The acceptance case of the memory accounting: a 1280x720 job with the seed 001 model interface (a 6 x 320 x 320
image and an audio window) and audio muxed into the video, 1 GB of budget and eight model lanes. The pipeline
renders a 1,500-frame template in chunks; a 100-frame template played over 1,000 output frames fits the cache
whole, but eight lanes' x264s do not fit beside it, so it renders with the pipeline too; with two lanes the segment
renderer runs it. Each peak must stay within 300 MB of the budget.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.memory import make_inputs, measure
from composer.config.checks import parse_size
from tests.conftest import write_wav

BUDGET = "1GB"
MARGIN = 300 * 10**6
SIZE = (1280, 720)


def _render(folder: Path, template: int, outputs: int, lanes: int) -> tuple[int, str]:
    job = make_inputs(folder, template, SIZE, BUDGET)
    rows = folder / f"rows-{outputs}.npy"
    np.save(rows, np.random.default_rng(1).standard_normal((outputs, 1024), np.float32))
    wav = write_wav(folder / "speech.wav", seconds=outputs / 25 + 1)
    run = measure([sys.executable, "-m", "composer", "run", str(job), "--set", f"run.lanes={lanes}",
                   "--set", f"features.path={rows}", "--set", f"output.audio={wav}"])
    assert run.returncode == 0, run.stderr
    return run.peak, run.stderr


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("template", "outputs", "lanes", "renderer"), [
    (1500, 1500, 8, "pipeline: model 8 lanes"),  # in chunks
    (100, 1000, 8, "pipeline: model 8 lanes"),  # eight x264s and the whole template do not fit: the pipeline
    (100, 1000, 2, "segments: 2 lanes"),
])
def test_the_budget_holds_for_every_renderer(tmp_path, template, outputs, lanes, renderer):
    peak, log = _render(tmp_path, template, outputs, lanes)
    assert renderer in log
    assert peak <= parse_size(BUDGET) + MARGIN, f"peak {peak / 2**20:.0f} MiB\n{log}"
