"""The ``composer`` command: a thin click layer over the library."""
