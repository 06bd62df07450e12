"""Benchmarks: composer against the designs the seeds describe, on the same job, each run in a fresh process.

``python -m benchmarks.run --help`` runs them; :mod:`benchmarks.designs` holds the designs.
"""
