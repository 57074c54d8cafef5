"""The dataset manifest: written last and atomically; a dataset without one is incomplete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scenario_pipeline.datasets.partition import CHECKSUM, PartitionInfo
from scenario_pipeline.datasets.spec import GENERATOR_VERSION, DatasetSpec
from scenario_pipeline.errors import DatasetError
from scenario_pipeline.storage import Storage

MANIFEST = "_manifest.json"
DATASETS = "datasets"  # {storage}/datasets/{name}/{spec_hash}/: what agents may read
TRUTH_DIR = "truth"  # {storage}/truth/{name}/{spec_hash}/spec.json: what they may not
TRUTH = "spec.json"
# What the manifest leaves out of the spec: the seed fixes every value, and the features say what
# was planted where. Together they are the answer key, so they live apart from the dataset, in
# {storage}/truth/{name}/{spec_hash}/spec.json, where agents are not given access (docs/datasets.md).
PRIVATE_FIELDS = ("seed", "features")


def dataset_root(storage: Storage, spec: DatasetSpec) -> Storage:
    return storage.child(DATASETS, spec.name, spec.spec_hash())


def truth_root(storage: Storage, name: str, spec_hash: str) -> Storage:
    """Where the full spec (with its seed and planted features) is kept: outside the dataset's folder."""
    return storage.child(TRUTH_DIR, name, spec_hash)


def public_spec(spec: DatasetSpec) -> dict[str, Any]:
    """The spec as readers of the dataset may see it: tables, columns, rules and sizes."""
    return {k: v for k, v in spec.model_dump(mode="json").items() if k not in PRIVATE_FIELDS}


def write_truth(storage: Storage, spec: DatasetSpec) -> None:
    """The full spec, for audits and for rebuilding the oracle without the code that made the run."""
    root = truth_root(storage, spec.name, spec.spec_hash())
    if not root.exists(TRUTH):
        root.write_json(TRUTH, spec.model_dump(mode="json"))


def read_truth(storage: Storage, name: str, spec_hash: str) -> DatasetSpec:
    root = truth_root(storage, name, spec_hash)
    if not root.exists(TRUTH):
        raise DatasetError(f"no full spec for dataset {name}/{spec_hash} under {root.url}; it was generated elsewhere or removed")
    spec = DatasetSpec.model_validate(root.read_json(TRUTH))
    if spec.spec_hash() != spec_hash:
        raise DatasetError(f"{root.uri(TRUTH)} holds spec {spec.spec_hash()}, not {spec_hash}")
    return spec


def build_manifest(spec: DatasetSpec, parts: dict[str, list[PartitionInfo]]) -> dict[str, Any]:
    """The public spec and every partition of every table (rows, bytes, checksum, per-column stats)."""
    tables = {}
    for table, infos in parts.items():
        infos = sorted(infos, key=lambda i: i.index)
        indices = [i.index for i in infos]
        if indices != list(range(spec.partitions_of(table))):
            raise DatasetError(
                f"refusing to write the manifest of {spec.name}: table {table} has partitions {_ranges(indices)}, "
                f"expected 0..{spec.partitions_of(table) - 1}"
            )
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
        "checksum": CHECKSUM,
        "created_at": datetime.now(UTC).isoformat(),
        "spec": public_spec(spec),  # without seed and features: see PRIVATE_FIELDS
        "tables": tables,
    }


def _ranges(indices: list[int]) -> str:
    return f"{len(indices)} partitions" if len(indices) > 10 else str(indices)


def write_manifest(root: Storage, manifest: dict[str, Any]) -> None:
    root.write_json(MANIFEST, manifest)


def read_manifest(root: Storage) -> dict[str, Any]:
    if not root.exists(MANIFEST):
        raise DatasetError(f"dataset at {root.url} is incomplete: it has no {MANIFEST}; run `scenario generate` to finish it")
    return root.read_json(MANIFEST)


def has_manifest(root: Storage) -> bool:
    return root.exists(MANIFEST)


def table_files(root: Storage, manifest: dict[str, Any], table: str) -> list[str]:
    """Filesystem paths of a table's partitions, as the manifest lists them (readers start here)."""
    if table not in manifest["tables"]:
        raise DatasetError(f"dataset {manifest['name']} has no table {table!r}; it has {', '.join(manifest['tables'])}")
    return [root.path(p["path"]) for p in manifest["tables"][table]["partitions"]]
