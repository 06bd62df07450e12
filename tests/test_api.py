"""The public API: what ``import composer`` offers, pinned, so that a change to it is a decision."""

from __future__ import annotations

import composer

PUBLIC = [
    "ComposerError",
    "Job",
    "JobError",
    "ModelError",
    "NullObserver",
    "Observer",
    "OutputError",
    "ProgressBar",
    "RenderStats",
    "SourceError",
    "__version__",
    "load_job",
    "render",
    "render_reference",
]


def test_the_public_names_are_pinned() -> None:
    assert sorted(composer.__all__) == PUBLIC


def test_every_public_name_exists() -> None:
    missing = [name for name in composer.__all__ if not hasattr(composer, name)]
    assert missing == []


def test_render_is_the_function_and_the_rooms_stay_importable() -> None:
    """``composer.render`` is the function; the room that holds it is ``composer.rendering``."""
    import composer.rendering.render

    assert callable(composer.render) and composer.render is composer.rendering.render.render
