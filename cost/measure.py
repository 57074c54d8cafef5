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


class LaneMeter:
    """A fan-out lane's busy time, shared out among the shards it runs at the same time (tasks/lanes.py).

    A lane holds one Dask worker thread from its start to its end, however many cases it has in
    flight: that wall time is what is priced, once. While k shards of the lane are open, each
    accrues 1/k of every second (and of the lane thread's CPU time), so the shards' thread-seconds
    add up to the lane's wall time, never to the sum of their overlapping wall times (which would
    price waiting on the agent times the concurrency)."""

    def __init__(self) -> None:
        self.t0 = self._last = time.perf_counter()
        self._cpu = time.thread_time()
        self.open: set[int] = set()
        self.wall: dict[int, float] = {}
        self.cpu: dict[int, float] = {}
        self.idle_seconds = 0.0  # lane time with no shard open (start-up before the first, if any)

    def _advance(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()  # called on the lane's own thread
        dt, dc = now - self._last, cpu - self._cpu
        self._last, self._cpu = now, cpu
        if not self.open:
            self.idle_seconds += dt
            return
        share, cshare = dt / len(self.open), dc / len(self.open)
        for s in self.open:
            self.wall[s] = self.wall.get(s, 0.0) + share
            self.cpu[s] = self.cpu.get(s, 0.0) + cshare

    def start(self, shard: int) -> None:
        self._advance()
        self.open.add(shard)

    def finish(self, shard: int, rows: list[dict[str, Any]], extra_cpu_s: float, bytes_written: int) -> Usage:
        """The shard's usage as it closes: its share of the lane's time, 1 PUT (its checkpoint), 1 HEAD
        (measuring it), its agents' reported usage. ``extra_cpu_s``: CPU of its scoring and checkpoint thread."""
        self._advance()
        self.open.discard(shard)
        busy = self.wall.pop(shard, 0.0)
        usage = usage_of_rows(rows)
        usage.thread_seconds = busy
        usage.cpu_seconds = self.cpu.pop(shard, 0.0) + extra_cpu_s
        usage.gb_seconds = busy * worker_memory_per_thread() / GIB
        usage.s3_put = 1  # the checkpoint
        usage.s3_get = 1  # the HEAD that measures it
        usage.bytes_written = bytes_written
        return usage

    def abandon(self, shard: int) -> None:
        """A shard that failed or was cancelled: it stops sharing the lane's time."""
        self._advance()
        self.open.discard(shard)
        self.wall.pop(shard, None)
        self.cpu.pop(shard, None)


def cluster_shape(client: Any) -> tuple[int, float]:
    """(threads, memory bytes) of every worker of a Dask cluster, as its scheduler reports them."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return sum(int(w.get("nthreads", 0)) for w in workers), float(sum(w.get("memory_limit", 0) or 0 for w in workers))


def cluster_usage(seconds: float, threads: int, memory_bytes: float) -> Usage:
    """A stage that held the whole cluster for ``seconds`` (dataset generation spreads over every thread)."""
    return Usage(thread_seconds=seconds * threads, gb_seconds=seconds * memory_bytes / GIB)
