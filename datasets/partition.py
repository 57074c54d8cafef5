"""Build one partition from its spec, encode it as Parquet, write it atomically with a sidecar."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scenario_pipeline.datasets import oracle
from scenario_pipeline.datasets.columns import generate_column
from scenario_pipeline.datasets.hashing import stream_key
from scenario_pipeline.datasets.features import feature_kind
from scenario_pipeline.datasets.spec import DatasetSpec
from scenario_pipeline.storage import Storage

COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1


def partition_name(p: int) -> str:
    return f"part-{p:07d}.parquet"


def sidecar_name(table: str, p: int) -> str:
    return f"{table}/_parts/part-{p:07d}.json"


@dataclass
class PartitionInfo:
    table: str
    index: int
    path: str  # relative to the dataset root
    rows: int
    bytes: int
    sha256: str
    row_groups: int
    stats: dict[str, dict[str, object]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def build_partition(spec: DatasetSpec, table: str, p: int) -> pa.Table:
    """Records [start, stop) of partition p; each value depends only on (spec, table, record id)."""
    tspec = spec.table(table)
    start, stop = spec.partition_bounds(p, table)
    records = spec.table_records(table)
    ids = np.arange(start, stop, dtype=np.uint64)
    arrays = [generate_column(col, ids, stream_key(spec.seed, table, col.name), records) for col in tspec.columns]
    out = pa.Table.from_arrays(arrays, names=[c.name for c in tspec.columns])
    for i, feature in enumerate(spec.features):
        if feature.table == table:
            out = feature_kind(feature.kind).plant(out, spec, feature, oracle.truth(spec, i), start, stop)
    return out


def encode_parquet(tbl: pa.Table, spec: DatasetSpec, table: str) -> bytes:
    tspec = spec.table(table)
    sink = pa.BufferOutputStream()
    bloom = {c: {"ndv": 4096, "fpp": 0.01} for c in tspec.bloom_columns}
    pq.write_table(
        tbl,
        sink,
        compression=COMPRESSION,
        compression_level=COMPRESSION_LEVEL,
        row_group_size=spec.row_group_rows,
        bloom_filter_options=bloom or None,
        write_statistics=True,
    )
    return sink.getvalue().to_pybytes()


def footer_stats(data: bytes) -> tuple[int, int, dict[str, dict[str, object]]]:
    """Rows, row groups and per-column min / max / null count, from the Parquet footer alone."""
    meta = pq.read_metadata(pa.BufferReader(data))
    stats: dict[str, dict[str, object]] = {}
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for c in range(group.num_columns):
            chunk = group.column(c)
            name = chunk.path_in_schema
            s = chunk.statistics
            entry = stats.setdefault(name, {"min": None, "max": None, "nulls": 0})
            if s is None or not s.has_min_max:
                continue
            lo, hi = _jsonable(s.min), _jsonable(s.max)
            entry["min"] = lo if entry["min"] is None else min(entry["min"], lo)
            entry["max"] = hi if entry["max"] is None else max(entry["max"], hi)
            entry["nulls"] = int(entry["nulls"]) + int(s.null_count or 0)
    return meta.num_rows, meta.num_row_groups, stats


def _jsonable(v: object) -> object:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def write_partition(spec: DatasetSpec, root: Storage, table: str, p: int, validate: bool = True) -> PartitionInfo:
    """Generate, validate, encode and write partition p; the sidecar is written last."""
    tbl = build_partition(spec, table, p)
    if validate:
        from scenario_pipeline.datasets.validate import validate_partition

        validate_partition(tbl, spec.table(table), partition=p)
    data = encode_parquet(tbl, spec, table)
    rows, row_groups, stats = footer_stats(data)
    info = PartitionInfo(table, p, f"{table}/{partition_name(p)}", rows, len(data), hashlib.sha256(data).hexdigest(), row_groups, stats)
    root.write_bytes(info.path, data)
    root.write_json(sidecar_name(table, p), info.to_json())
    return info


def verified_sidecar(root: Storage, table: str, p: int) -> PartitionInfo | None:
    """The sidecar of a partition already written whole (size and footer row count agree), else None."""
    rel = sidecar_name(table, p)
    if not root.exists(rel):
        return None
    try:
        info = PartitionInfo(**root.read_json(rel))
        if root.size(info.path) != info.bytes:
            return None
        with root.fs.open(root.path(info.path), "rb") as fh:
            if pq.ParquetFile(fh).metadata.num_rows != info.rows:
                return None
        return info
    except Exception:  # noqa: BLE001 - a torn or unreadable sidecar or file is regenerated, not fatal
        return None
