"""Measuring usage where work happens: a shard inside a Dask worker, a stage on the whole cluster."""

from __future__ import annotations

import time
from typing import Any

from scenario_pipeline.cost.accounting import GIB, Usage, usage_of_rows
from scenario_pipeline.errors import StorageError
from scenario_pipeline.storage import Storage


def worker_memory_per_thread() -> float:
    """Bytes of memory one thread of this Dask worker holds (its memory limit over its threads); 0 outside a worker."""
    try:
        from distributed import get_worker

        w = get_worker()
    except ValueError:
        return 0.0
    limit = getattr(getattr(w, "memory_manager", None), "memory_limit", None) or 0
    return float(limit) / max(1, int(getattr(w.state, "nthreads", 1) or 1))


class ShardMeter:
    """Started when a shard starts on a worker thread; ``finish`` gives the shard's usage."""

    def __init__(self) -> None:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.thread_time()

    def finish(self, rows: list[dict[str, Any]], storage: Storage, checkpoint: str) -> Usage:
        busy = time.perf_counter() - self.wall0
        usage = usage_of_rows(rows)
        usage.thread_seconds = busy
        # This thread's CPU: scoring and writing the checkpoint. An agent called in its own thread
        # (tasks/score.py) is not in it; that time is in the busy seconds, which are what is priced.
        usage.cpu_seconds = time.thread_time() - self.cpu0
        usage.gb_seconds = busy * worker_memory_per_thread() / GIB
        usage.s3_put = 1  # the checkpoint
        usage.s3_get = 1  # the HEAD that measures it
        try:
            usage.bytes_written = storage.size(checkpoint)
        except StorageError:
            pass  # the shard is checkpointed: a failed measurement must not fail (and rerun) it
        return usage


def cluster_shape(client: Any) -> tuple[int, float]:
    """(threads, memory bytes) of every worker of a Dask cluster, as its scheduler reports them."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return sum(int(w.get("nthreads", 0)) for w in workers), float(sum(w.get("memory_limit", 0) or 0 for w in workers))


def cluster_usage(seconds: float, threads: int, memory_bytes: float) -> Usage:
    """A stage that held the whole cluster for ``seconds`` (dataset generation spreads over every thread)."""
    return Usage(thread_seconds=seconds * threads, gb_seconds=seconds * memory_bytes / GIB)
