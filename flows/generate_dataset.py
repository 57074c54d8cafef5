"""The generate flow: materialize one named dataset (all of it, or the partitions it lacks)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, runtime

from scenario_pipeline.datasets.manifest import MANIFEST, dataset_root, has_manifest
from scenario_pipeline.flows.param_types import DaskAddress, DatasetName, PartitionRows, Records, Seed, StorageUrl
from scenario_pipeline.flows.params import check_generate_params
from scenario_pipeline.infra.dask_cluster import dask_client
from scenario_pipeline.settings import load_settings
from scenario_pipeline.storage import Storage
from scenario_pipeline.tasks.generate import ensure_dataset


def _flow_run_name() -> str:
    p = runtime.flow_run.parameters
    records = p.get("records")
    scale = f"{records:.0e}".replace("+0", "").replace("+", "") if isinstance(records, int) else "default"
    return f"generate-{p.get('dataset', 'events')}-{scale}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


@flow(name="generate-dataset", flow_run_name=_flow_run_name, log_prints=True)
def generate_dataset(
    dataset: DatasetName = "events",
    records: Records = 10_000_000,
    partition_rows: PartitionRows | None = None,
    seed: Seed | None = None,
    storage_url: StorageUrl | None = None,
    dask_address: DaskAddress | None = None,
) -> dict[str, Any]:
    """Generate ``dataset`` at ``records`` records into ``storage_url``; returns a summary.

    Rerunning it is cheap: a complete dataset (manifest present) is returned as is, and an
    interrupted one is finished without rewriting the partitions it already has.
    """
    settings = load_settings()
    # bad input stops here, before any work (the same checks as `scenario generate`)
    spec = check_generate_params(dataset, records, partition_rows, seed, storage_url, dask_address, settings)
    logger = get_run_logger()
    t0 = time.perf_counter()
    storage = Storage.from_url(storage_url or settings.resolved_storage_url())
    root = dataset_root(storage, spec)
    logger.info(
        "Dataset %s (spec %s): %s records in %d partitions of %s rows, to %s.",
        spec.name,
        spec.spec_hash(),
        f"{spec.records:,}",
        spec.partitions,
        f"{spec.partition_rows:,}",
        root.url,
    )
    storage.ensure_writable()
    complete = has_manifest(root)
    if complete:
        logger.info("Dataset %s is already complete at %s; nothing to generate.", spec.name, root.url)
        manifest = ensure_dataset(None, spec, storage)  # no cluster needed to read a manifest
    else:
        with dask_client(dask_address) as client:
            manifest = ensure_dataset(client, spec, storage)
    return summary(spec, root, manifest, time.perf_counter() - t0, complete)


def summary(spec: Any, root: Storage, manifest: dict[str, Any], seconds: float, already_complete: bool) -> dict[str, Any]:
    gen = {} if already_complete else manifest.get("generation", {})
    return {
        "dataset": spec.name,
        "spec_hash": spec.spec_hash(),
        "values_hash": spec.values_hash(),
        "records": spec.records,
        "seed": spec.seed,
        "url": root.url,
        "manifest_url": root.uri(MANIFEST),
        "tables": {
            t: {"rows": v["rows"], "bytes": v["bytes"], "partitions": len(v["partitions"]), "url": root.uri(t)}
            for t, v in manifest["tables"].items()
        },
        "rows": sum(v["rows"] for v in manifest["tables"].values()),
        "bytes": sum(v["bytes"] for v in manifest["tables"].values()),
        "partitions_written": gen.get("partitions_written", 0),
        "partitions_reused": gen.get("partitions_reused", 0),
        "already_complete": already_complete,
        "seconds": round(seconds, 3),
    }
