"""Stage 4, checkpoint: finished shards of cases, written to storage as they finish.

Layout under the storage root: ``runs/{run_id}/run.json`` (the run's parameters, written first)
and ``runs/{run_id}/shards/shard-{i:05d}.parquet`` (one file per finished shard, written whole
or not at all). A shard whose file is present with the expected row count is never run again.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from scenario_pipeline.errors import RunStateError
from scenario_pipeline.storage import Storage

CASE_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("scenario", pa.string()),
    ("case_id", pa.string()),
    ("case_index", pa.int32()),
    ("shard", pa.int32()),
    ("passed", pa.bool_()),
    ("reason", pa.string()),
    ("metrics_json", pa.string()),
    ("answer_digest", pa.string()),
    ("answer_bytes", pa.int64()),
    ("latency_ms", pa.float64()),
    ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()),
    ("cost_usd", pa.float64()),
    ("attributes_json", pa.string()),
    ("worker", pa.string()),
])

# Parameters that must match when a run id is reused: otherwise the shards would not line up.
RUN_IDENTITY = ("scenario", "records", "cases", "seed", "agent", "shard_size", "dataset_hash")


def run_dir(run_id: str) -> str:
    return f"runs/{run_id}"


def shard_path(run_id: str, shard: int) -> str:
    return f"{run_dir(run_id)}/shards/shard-{shard:05d}.parquet"


def write_run_record(storage: Storage, run_id: str, record: dict[str, Any]) -> bool:
    """Write ``run.json`` for a new run; for an existing id, check it is the same run. True if resuming."""
    rel = f"{run_dir(run_id)}/run.json"
    if storage.exists(rel):
        old = storage.read_json(rel)
        diffs = [f"{k}: was {old.get(k)!r}, now {record.get(k)!r}" for k in RUN_IDENTITY if old.get(k) != record.get(k)]
        if diffs:
            raise RunStateError(f"run id {run_id!r} already exists with other parameters ({'; '.join(diffs)}); use a new --run-id or the original parameters")
        return True
    storage.write_json(rel, record)
    return False


def write_shard(storage: Storage, run_id: str, shard: int, rows: list[dict[str, Any]]) -> str:
    table = pa.Table.from_pylist(rows, schema=CASE_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    rel = shard_path(run_id, shard)
    storage.write_bytes(rel, buf.getvalue())
    return rel


def finished_shards(storage: Storage, run_id: str, expected_rows: dict[int, int]) -> set[int]:
    """Shards whose checkpoint is present and whole (its footer's row count is as expected)."""
    done: set[int] = set()
    for name in storage.list(f"{run_dir(run_id)}/shards"):
        if not (name.startswith("shard-") and name.endswith(".parquet")):
            continue
        shard = int(name[6:-8])
        try:
            meta = pq.read_metadata(io.BytesIO(storage.read_bytes(shard_path(run_id, shard))))
        except Exception:  # noqa: BLE001 - unreadable: run the shard again
            continue
        if expected_rows.get(shard) == meta.num_rows:
            done.add(shard)
    return done


def read_results(storage: Storage, run_id: str, shards: list[int]) -> pa.Table:
    """Every case row of a run, in case order; each case exactly once."""
    tables = [pq.read_table(io.BytesIO(storage.read_bytes(shard_path(run_id, s)))) for s in sorted(shards)]
    table = pa.concat_tables(tables) if tables else CASE_SCHEMA.empty_table()
    return table.sort_by("case_index")
