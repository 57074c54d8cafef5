"""Stage 1, generate: make sure a dataset exists whole; write only the partitions it lacks."""

from __future__ import annotations

import time
from typing import Any

from distributed import Client, as_completed
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from scenario_pipeline import progress
from scenario_pipeline.datasets.manifest import build_manifest, dataset_root, has_manifest, read_manifest, write_manifest
from scenario_pipeline.datasets.partition import PartitionInfo, verified_sidecar, write_partition
from scenario_pipeline.datasets.spec import DatasetSpec
from scenario_pipeline.errors import DatasetError, ValidationFailed
from scenario_pipeline.storage import Storage


def _write(spec: DatasetSpec, root_url: str, table: str, p: int) -> PartitionInfo:
    return write_partition(spec, Storage.from_url(root_url), table, p)


def _verify(spec: DatasetSpec, root_url: str, table: str, p: int) -> PartitionInfo | None:
    return verified_sidecar(Storage.from_url(root_url), table, p)


def materialize(client: Client, spec: DatasetSpec, storage: Storage, log: Any = None) -> dict[str, Any]:
    """Generate the missing partitions on Dask, then write the manifest; returns the manifest."""
    root = dataset_root(storage, spec)
    if has_manifest(root):
        manifest = read_manifest(root)
        if manifest.get("spec_hash") != spec.spec_hash():
            raise DatasetError(f"dataset at {root.url} has a manifest for spec {manifest.get('spec_hash')}, not {spec.spec_hash()}; delete the folder and generate again")
        return manifest
    root.ensure_writable()
    bar = progress.listener()
    parts: dict[str, list[PartitionInfo]] = {}
    started = time.perf_counter()
    for table in (t.name for t in spec.tables):
        indices = list(range(spec.partitions))
        checks = client.map(_verify, [spec] * len(indices), [root.url] * len(indices), [table] * len(indices), indices, pure=False)
        present = [i for i in client.gather(checks) if i is not None]
        missing = sorted(set(indices) - {i.index for i in present})
        parts[table] = present
        if log:
            log.info("Dataset %s/%s table %s: %d of %d partitions present, generating %d.", spec.name, spec.spec_hash(), table, len(present), len(indices), len(missing))
        bar.start(f"generate {table}", len(indices), "partitions")
        bar.advance(f"generate {table}", len(present))
        futures = client.map(_write, [spec] * len(missing), [root.url] * len(missing), [table] * len(missing), missing, pure=False, retries=2)
        failures: list[str] = []
        for fut in as_completed(futures, loop=client.loop):
            try:
                parts[table].append(fut.result())
            except ValidationFailed as exc:
                failures.append(str(exc))
            bar.advance(f"generate {table}", len(parts[table]))
        bar.finish(f"generate {table}")
        if failures:
            raise ValidationFailed(f"{len(failures)} partition(s) of {spec.name}.{table} failed validation; the dataset is not published:\n" + "\n".join(failures[:5]))
    manifest = build_manifest(spec, parts)
    manifest["generation_seconds"] = round(time.perf_counter() - started, 3)
    write_manifest(root, manifest)
    return manifest


@task(name="generate-dataset", cache_policy=NO_CACHE)
def ensure_dataset(client: Client, spec: DatasetSpec, storage: Storage) -> dict[str, Any]:
    logger = get_run_logger()
    manifest = materialize(client, spec, storage, logger)
    rows = sum(t["rows"] for t in manifest["tables"].values())
    size = sum(t["bytes"] for t in manifest["tables"].values())
    logger.info("Dataset %s ready at %s: %d rows, %.1f MB.", spec.name, dataset_root(storage, spec).url, rows, size / 1e6)
    return manifest
