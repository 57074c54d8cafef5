"""The dataset manifest: written last and atomically; a dataset without one is incomplete."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from scenario_pipeline.datasets.partition import PartitionInfo
from scenario_pipeline.datasets.spec import DatasetSpec
from scenario_pipeline.errors import DatasetError
from scenario_pipeline.storage import Storage

MANIFEST = "_manifest.json"
GENERATOR_VERSION = 1


def dataset_root(storage: Storage, spec: DatasetSpec) -> Storage:
    return storage.child("datasets", spec.name, spec.spec_hash())


def build_manifest(spec: DatasetSpec, parts: dict[str, list[PartitionInfo]]) -> dict[str, Any]:
    tables = {}
    for table, infos in parts.items():
        infos = sorted(infos, key=lambda i: i.index)
        tables[table] = {
            "partitions": [i.to_json() for i in infos],
            "rows": sum(i.rows for i in infos),
            "bytes": sum(i.bytes for i in infos),
        }
    return {
        "name": spec.name,
        "spec_hash": spec.spec_hash(),
        "values_hash": spec.values_hash(),
        "generator_version": GENERATOR_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "spec": spec.model_dump(mode="json"),
        "tables": tables,
    }


def write_manifest(root: Storage, manifest: dict[str, Any]) -> None:
    root.write_json(MANIFEST, manifest)


def read_manifest(root: Storage) -> dict[str, Any]:
    if not root.exists(MANIFEST):
        raise DatasetError(f"dataset at {root.url} is incomplete: it has no {MANIFEST}; run `scenario generate` to finish it")
    return root.read_json(MANIFEST)


def has_manifest(root: Storage) -> bool:
    return root.exists(MANIFEST)
