"""Benchmarks: composer against the designs the seeds describe, on the same job, in one process.

``python -m benchmarks.run --help`` runs them; :mod:`benchmarks.designs` holds the designs.
"""
