"""The commented example job files that ship with composer (``composer/examples/``), and ``composer init``.

Each example is one file of package data: ``composer init DIR --example NAME`` copies it, the demo writes the
``demo`` one, and the tests load every one, so there is a single copy of each.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from composer.errors import JobError, OutputError

__all__ = ["DEFAULT_EXAMPLE", "EXAMPLES", "example_text", "write_example"]

# name -> (file, what it is for)
EXAMPLES: dict[str, tuple[str, str]] = {
    "ultralight": ("ultralight-168.toml", "Ultralight-Digital-Human: 168 crop, 4 border, HuBERT features from a wav"),
    "seed001": ("seed001-328.toml", "seed 001's renderer: 328 crop, 4 border, 8 rows of 1024 features"),
    "restore": ("restore-512.toml", "face restoration paste-back: 512 crop, RGB, feathered edges"),
    "demo": ("demo.toml", "the demo's job (`composer demo` makes its inputs)"),
}
DEFAULT_EXAMPLE = "ultralight"


def example_text(name: str) -> str:
    """The text of example ``name`` (a key of :data:`EXAMPLES`)."""
    file, _ = EXAMPLES[name]
    return resources.files("composer").joinpath(f"examples/{file}").read_text(encoding="utf-8")


def write_example(folder: Path, name: str = DEFAULT_EXAMPLE) -> Path:
    """Write example ``name`` as ``folder/job.toml`` (the folder created if missing) and return its path.

    Raises:
        JobError: ``name`` is not an example, ``folder`` is a file, or ``folder/job.toml`` exists already.
        OutputError: the file cannot be written.
    """
    if name not in EXAMPLES:
        raise JobError(f"no example {name!r} (known: {', '.join(EXAMPLES)})")
    folder = Path(folder)
    job = folder / "job.toml"
    if folder.exists() and not folder.is_dir():
        raise JobError(f"{folder}: exists and is not a folder")
    if job.exists() or job.is_symlink():
        raise JobError(f"{job}: exists already; composer init never overwrites a job file (remove it, or give "
                       "another folder)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(job, "x", encoding="utf-8") as file:  # "x": never onto a file that appeared meanwhile
            file.write(example_text(name))
    except OSError as exc:
        raise OutputError(f"{job}: cannot write the job file: {exc.strerror or exc}") from exc
    return job
