"""The Dask cluster a run uses: an existing scheduler by address, or a LocalCluster of processes."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from distributed import Client, LocalCluster

from scenario_pipeline.errors import ClusterError, UsageError
from scenario_pipeline.settings import DaskSettings


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def check_address(address: str) -> None:
    """Fail fast, before any work, on a scheduler address that does not accept connections."""
    if "://" not in address:
        raise UsageError(f"Dask address {address!r} needs a scheme, e.g. tcp://host:8786")
    url = urlparse(address)
    if not url.hostname or not url.port:
        raise UsageError(f"Dask address {address!r} needs a host and a port, e.g. tcp://host:8786")
    try:
        socket.create_connection((url.hostname, url.port), timeout=5).close()
    except OSError as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: {exc.strerror or exc}; check the address and that the scheduler is running"
        ) from exc


@contextmanager
def dask_client(address: str | None, settings: DaskSettings | None = None) -> Iterator[Client]:
    """A connected client; a LocalCluster it starts is closed on exit."""
    settings = settings or DaskSettings()
    address = address or settings.address
    if address:
        if "://" not in address:
            raise UsageError(f"Dask address {address!r} needs a scheme, e.g. tcp://host:8786")
        try:
            client = Client(address, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {address}: {exc}; check the address and that the scheduler is running"
            ) from exc
        try:
            yield client
        finally:
            client.close()
        return
    # The scheduler runs in this process; its INFO chatter would drown the run's own logs.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = LocalCluster(
        n_workers=settings.n_workers or default_workers(),
        threads_per_worker=settings.threads_per_worker,
        processes=True,
        memory_limit=settings.memory_limit,
        dashboard_address="127.0.0.1:0",
        # The workers print into the user's terminal. At ERROR they print tracebacks of shutdown
        # races (a heartbeat to a scheduler that has just closed after a failed run) under the one
        # clear error line; task failures reach the flow through their futures anyway.
        silence_logs=logging.CRITICAL,
    )
    client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def total_threads(client: Client) -> int:
    return max(1, sum(w["nthreads"] for w in client.scheduler_info(n_workers=-1)["workers"].values()))
