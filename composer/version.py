"""composer's version, in a module of its own below every room, so that any of them may read it (the resume
fingerprint records it: a run is only continued by the version that started it)."""

__version__ = "0.1.0"
