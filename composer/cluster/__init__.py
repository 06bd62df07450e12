"""Rendering one job on a Dask cluster: each video segment a task (docs/cluster.md, docs/design.md 4.11)."""
