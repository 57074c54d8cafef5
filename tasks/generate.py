"""Stage 1, generate: make sure a dataset exists whole; write only the partitions it lacks.

Idempotent and resumable: a partition whose sidecar is present and verified (size and footer
row count agree) is kept; every other one is generated. Files are written under a temporary
name and renamed (or PUT whole on S3), the sidecar after its file, the manifest after all of
them, so a run killed at any instant leaves only whole partitions and no manifest; the next
run finishes the rest. Partitions are submitted to Dask through a bounded window, so the flow's
memory does not grow with the partition count.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from distributed import Client, as_completed
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from scenario_pipeline import progress
from scenario_pipeline.datasets import discovery
from scenario_pipeline.datasets.jobs import verify_job, write_job
from scenario_pipeline.datasets.manifest import (
    build_manifest,
    dataset_root,
    has_manifest,
    read_manifest,
    write_manifest,
    write_truth,
)
from scenario_pipeline.datasets.partition import PartitionInfo
from scenario_pipeline.datasets.spec import DatasetSpec
from scenario_pipeline.errors import DatasetError, ValidationFailed
from scenario_pipeline.scenarios import registry  # noqa: F401 - adds the scenario packages' discovery hook
from scenario_pipeline.storage import DiskFullError, Storage

STALE_TEMP_S = 300  # temporary files older than this belong to a dead writer
VERIFY_BATCH = 64  # partitions verified per Dask task


def _batches(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def present_partitions(client: Client, spec: DatasetSpec, root: Storage, table: str) -> list[PartitionInfo]:
    """Partitions of ``table`` already written whole: one listing of the sidecars, then the
    listed ones verified on the cluster."""
    listed = []
    for name in root.list(f"{table}/_parts"):
        if name.startswith("part-") and name.endswith(".json"):
            p = int(name[5:-5])
            if 0 <= p < spec.partitions_of(table):
                listed.append(p)
    if not listed:
        return []
    futures = client.map(
        verify_job,
        [root.url] * -(-len(listed) // VERIFY_BATCH),
        [table] * -(-len(listed) // VERIFY_BATCH),
        list(_batches(sorted(listed), VERIFY_BATCH)),
        pure=False,
    )
    return [info for batch in client.gather(futures) for info in batch]


def remove_stale_temps(root: Storage, tables: list[str]) -> int:
    """Delete temporary files a killed writer left (local storage; S3 PUTs leave none)."""
    if root.scheme != "file":
        return 0
    removed = 0
    now = time.time()
    for table in tables:
        for sub in (table, f"{table}/_parts"):
            folder = root.path(sub)
            if not os.path.isdir(folder):
                continue
            for name in os.listdir(folder):
                path = os.path.join(folder, name)
                if name.startswith(".") and ".tmp-" in name and now - os.path.getmtime(path) > STALE_TEMP_S:
                    os.unlink(path)
                    removed += 1
    return removed


def _window(client: Client) -> int:
    threads = sum(w["nthreads"] for w in client.scheduler_info(n_workers=-1)["workers"].values())
    return max(4, 3 * threads)


def materialize(client: Client | None, spec: DatasetSpec, storage: Storage, log: Any = None) -> dict[str, Any]:
    """Generate the missing partitions on Dask, then write the manifest; returns the manifest. A complete
    dataset needs no cluster (``client`` None)."""
    root = dataset_root(storage, spec)
    if has_manifest(root):
        manifest = read_manifest(root)
        if manifest.get("spec_hash") != spec.spec_hash():
            raise DatasetError(
                f"dataset at {root.url} has a manifest for spec {manifest.get('spec_hash')}, not {spec.spec_hash()}; delete the folder and generate again"
            )
        return manifest
    if client is None:
        raise DatasetError(f"dataset at {root.url} is not complete, and generating it needs a Dask cluster")
    root.ensure_writable()
    write_truth(storage, spec)  # first: a dataset whose answer key is lost could not be scored again
    remove_stale_temps(root, [t.name for t in spec.tables])
    bar = progress.listener()
    parts: dict[str, list[PartitionInfo]] = {}
    started = time.perf_counter()
    written = reused = 0
    for table in (t.name for t in spec.tables):
        total = spec.partitions_of(table)
        present = present_partitions(client, spec, root, table)
        done = {i.index for i in present}
        missing = [p for p in range(total) if p not in done]
        parts[table] = present
        reused += len(present)
        if log:
            log.info(
                "Dataset %s/%s table %s: %d of %d partitions present, generating %d.",
                spec.name,
                spec.spec_hash(),
                table,
                len(present),
                total,
                len(missing),
            )
        stage = f"generate {table}"
        bar.start(stage, total, "partitions")
        bar.advance(stage, len(present))
        report = _progress_log(log, f"{spec.name}.{table}", len(present), total)

        def tick(stage: str = stage, table: str = table, report: Any = report) -> None:
            bar.advance(stage, len(parts[table]))
            report(len(parts[table]))

        failures = _run_window(client, spec, root, table, missing, parts[table], tick)
        written += len(missing) - len(failures)
        bar.finish(stage)
        if failures:
            raise ValidationFailed(
                f"{len(failures)} partition(s) of {spec.name}.{table} failed validation; the dataset is not published "
                f"(the {len(parts[table])} valid partitions are kept for the next run):\n" + "\n".join(failures[:5])
            )
    manifest = build_manifest(spec, parts)
    manifest["generation"] = {
        "seconds": round(time.perf_counter() - started, 3),
        "partitions_written": written,
        "partitions_reused": reused,
    }
    write_manifest(root, manifest)
    return manifest


PROGRESS_LOG_EVERY_S = 30.0  # a flow run's log tells how far a long generation is, twice a minute


def _progress_log(log: Any, what: str, present: int, total: int, clock: Callable[[], float] = time.monotonic) -> Any:
    """A callback that logs done/total, rate and time left at most every PROGRESS_LOG_EVERY_S."""
    started = last = clock()

    def report(done: int) -> None:
        nonlocal last
        now = clock()
        if log is None or done >= total or now - last < PROGRESS_LOG_EVERY_S:
            return
        last = now
        rate = (done - present) / (now - started)
        left = (total - done) / rate if rate > 0 else float("inf")
        log.info(
            "Generating %s: %d of %d partitions (%.0f%%), %.2f partitions/s, about %s left.",
            what,
            done,
            total,
            100.0 * done / total,
            rate,
            _duration(left),
        )

    return report


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unknown time"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _run_window(
    client: Client, spec: DatasetSpec, root: Storage, table: str, missing: list[int], into: list[PartitionInfo], tick: Any
) -> list[str]:
    """Write ``missing`` with at most a few tasks per thread in flight; returns failure reports."""
    pending = iter(missing)
    failures: list[str] = []
    window = _window(client)
    hooks = discovery.hooks()  # a fresh worker process imports their modules when it unpickles them

    def submit(p: int) -> Any:
        return client.submit(write_job, spec, root.url, table, p, hooks, pure=False, retries=2)

    queue = as_completed(
        [submit(p) for _, p in zip(range(window), pending, strict=False)], loop=client.loop
    )  # the first `window`
    disk_full: DiskFullError | None = None
    for fut in queue:
        result = fut.result()  # storage errors (after Dask's retries) end the run here
        if isinstance(result, DiskFullError):  # submit no more, let the writes in flight end, then raise it
            disk_full = disk_full or result
        elif isinstance(result, str):
            failures.append(result)
        else:
            into.append(result)
        tick()
        nxt = None if failures or disk_full else next(pending, None)  # a broken rule breaks them all: stop early
        if nxt is not None:
            queue.add(submit(nxt))
    if disk_full is not None:
        raise disk_full
    return failures


@task(name="generate-dataset", cache_policy=NO_CACHE)
def ensure_dataset(client: Client | None, spec: DatasetSpec, storage: Storage) -> dict[str, Any]:
    logger = get_run_logger()
    manifest = materialize(client, spec, storage, logger)
    rows = sum(t["rows"] for t in manifest["tables"].values())
    size = sum(t["bytes"] for t in manifest["tables"].values())
    logger.info("Dataset %s ready at %s: %d rows, %.1f MB.", spec.name, dataset_root(storage, spec).url, rows, size / 1e6)
    return manifest
