"""A Dask client for ``[run] cluster``: a scheduler's address, or a local cluster composer starts and stops."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from composer.config.checks import CLUSTER_ADDRESS
from composer.errors import JobError

if TYPE_CHECKING:
    from distributed import Client

CONNECT_SECONDS = 10  # to reach the scheduler, and then for a first worker to be there
RETRIES = 2  # times a segment is started again after the worker running it died (Dask's allowed failures)
# Dask settings of the clusters composer starts: a dead worker's segment is retried RETRIES more times, and the
# workers' statistical profiler (a sample of every thread's stack every 10 ms, taking the GIL) is off.
LOCAL_CONFIG = {"distributed.scheduler.allowed-failures": RETRIES, "distributed.worker.profile.enabled": False}
_QUIET = ("distributed", "tornado", "asyncio", "bokeh")


def local_cluster(address: str) -> tuple[int, int] | None:
    """``local:N`` or ``local:NxK`` as (N worker processes, K threads each); None for a scheduler's address."""
    match = CLUSTER_ADDRESS.match(address)
    if match is None or match["workers"] is None:
        return None
    return int(match["workers"]), int(match["threads"] or 1)


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's own log (workers restarted, connections lost) kept off stderr, where composer says one line; it
    shows with ``--debug``."""
    debug = logging.getLogger("composer").getEffectiveLevel() <= logging.DEBUG
    loggers = [logging.getLogger(name) for name in _QUIET]
    levels = [logger.level for logger in loggers]
    if not debug:
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def connect(address: str) -> Iterator[Client]:
    """A client of the Dask scheduler at ``address``, or of a local cluster of ``local:N[xK]`` worker processes
    (K threads each, default 1) started here and stopped on exit.

    Raises:
        JobError: dask.distributed is not installed, the scheduler cannot be reached within
            :data:`CONNECT_SECONDS`, or it has no worker.
    """
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise JobError(f"run.cluster: rendering on a cluster needs dask.distributed ({exc}); install "
                       "composer-repaint[cluster]") from None
    local = local_cluster(address)
    with _quiet_dask(), dask.config.set(LOCAL_CONFIG), \
            contextlib.ExitStack() as stack:
        if local is not None:
            workers, threads = local
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=threads, processes=True, dashboard_address=":0",
                scheduler_kwargs={"dashboard": False},
                memory_limit=0, silence_logs=logging.CRITICAL))
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(address, timeout=f"{CONNECT_SECONDS}s"))
            except (OSError, TimeoutError) as exc:
                raise JobError(f"run.cluster: cannot reach the Dask scheduler at {address} within "
                               f"{CONNECT_SECONDS} s ({type(exc).__name__})") from None
        try:
            client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError):
            raise JobError(f"run.cluster: the Dask scheduler at {address} has no worker "
                           f"(waited {CONNECT_SECONDS} s); start one with: dask worker {address}") from None
        yield client
