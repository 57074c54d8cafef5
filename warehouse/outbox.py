"""The outbox: a run's warehouse rows, kept in storage while the warehouse cannot take them.

Layout under the storage root::

    runs/{run_id}/outbox/cases.parquet   the case rows, as published
    runs/{run_id}/outbox/payload.json    the run row, metrics, alerts, costs and the target warehouse URL
    outbox/{quoted run_id}.json          an index entry, written last, so pending runs are found without listing every run

Delivery publishes the payload (idempotent: DELETE + INSERT per run), then removes the index entry
and the folder. A crash between the two only means the next delivery publishes the same rows
again, which replaces them: nothing is lost and nothing is doubled.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.parquet as pq

from scenario_pipeline.errors import StorageError, UsageError, WarehouseError
from scenario_pipeline.storage import Storage, run_dir
from scenario_pipeline.warehouse.base import connect
from scenario_pipeline.warehouse.schema import CASE_COLUMNS
from scenario_pipeline.warehouse.sql_warehouse import utcnow

INDEX = "outbox"


@dataclass
class Payload:
    """Everything one publish writes for a run."""

    run: dict[str, Any]
    cases: pa.Table
    metrics: list[dict[str, Any]]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    costs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.run["run_id"]


def _encode(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return {"$datetime": obj.isoformat()}
    raise TypeError(f"cannot store {type(obj).__name__} in the outbox")


def _decode(obj: dict[str, Any]) -> Any:
    if set(obj) == {"$datetime"}:
        return datetime.fromisoformat(obj["$datetime"])
    return obj


def folder(run_id: str) -> str:
    return f"{run_dir(run_id)}/outbox"


def _index_entry(run_id: str) -> str:
    return f"{INDEX}/{quote(run_id, safe='')}.json"


def queue(storage: Storage, warehouse_url: str, payload: Payload, error: str) -> str:
    """Keep a payload for later delivery; returns where it waits."""
    buf = io.BytesIO()
    pq.write_table(payload.cases.select(CASE_COLUMNS), buf, compression="zstd")
    storage.write_bytes(f"{folder(payload.run_id)}/cases.parquet", buf.getvalue())
    doc = {
        "run": payload.run,
        "metrics": payload.metrics,
        "alerts": payload.alerts,
        "costs": payload.costs,
        "warehouse_url": warehouse_url,
        "queued_at": utcnow(),
        "error": error[:2000],
        "case_rows": payload.cases.num_rows,
    }
    storage.write_bytes(f"{folder(payload.run_id)}/payload.json", json.dumps(doc, default=_encode, indent=1).encode())
    storage.write_bytes(
        _index_entry(payload.run_id),
        json.dumps({"run_id": payload.run_id, "warehouse_url": warehouse_url, "queued_at": utcnow()}, default=_encode).encode(),
    )
    return storage.uri(folder(payload.run_id))


def pending(storage: Storage) -> list[str]:
    """Run ids waiting for delivery, oldest name first."""
    return sorted(unquote(name[:-5]) for name in storage.list(INDEX) if name.endswith(".json") and not name.startswith("."))


def is_pending(storage: Storage, run_id: str) -> bool:
    return storage.exists(_index_entry(run_id))


def load(storage: Storage, run_id: str) -> tuple[Payload, dict[str, Any]]:
    """A queued payload and its metadata (target URL, when and why it was queued)."""
    if not storage.exists(f"{folder(run_id)}/payload.json"):
        raise UsageError(
            f"no rows of run {run_id!r} wait in the outbox at {storage.uri(folder(run_id))}; "
            "check the run id and --data-dir / --storage"
        )
    doc = json.loads(storage.read_bytes(f"{folder(run_id)}/payload.json"), object_hook=_decode)
    cases = pq.read_table(io.BytesIO(storage.read_bytes(f"{folder(run_id)}/cases.parquet")))
    if cases.num_rows != doc["case_rows"]:
        raise StorageError(
            f"the outbox of run {run_id!r} holds {cases.num_rows} case rows, its payload says {doc['case_rows']}; "
            "publish the run again from its checkpoints with `scenario run --run-id`"
        )
    payload = Payload(doc["run"], cases, doc["metrics"], doc.get("alerts") or [], doc.get("costs") or [])
    return payload, {k: doc.get(k) for k in ("warehouse_url", "queued_at", "error", "case_rows")}


def clear(storage: Storage, run_id: str) -> None:
    """Forget a delivered payload: the index entry first, so a half-cleared folder is never found again."""
    storage.delete(_index_entry(run_id))
    storage.delete(folder(run_id))


def deliver(storage: Storage, run_id: str, warehouse_url: str | None = None) -> dict[str, Any]:
    """Publish one waiting run (to its recorded warehouse unless told otherwise), then clear it.

    Raises WarehouseError when the warehouse still cannot take it; the payload then stays.
    """
    payload, meta = load(storage, run_id)
    url = warehouse_url or meta["warehouse_url"]
    wh = connect(url)
    try:
        wh.publish_run(payload.run, payload.cases, payload.metrics, payload.alerts, payload.costs)
        counts = wh.counts(run_id)
    finally:
        wh.close()
    if counts["case_results"] != payload.cases.num_rows:
        raise WarehouseError(
            f"run {run_id!r}: the warehouse holds {counts['case_results']} case rows after delivery, "
            f"the outbox had {payload.cases.num_rows}; the outbox is kept"
        )
    clear(storage, run_id)
    return {"run_id": run_id, "warehouse_url": url, "counts": counts, "queued_at": meta["queued_at"]}


def deliver_pending(storage: Storage, warehouse_url: str, skip: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Deliver every waiting run bound for this warehouse; returns (delivered, still waiting with why)."""
    delivered, failed = [], []
    for run_id in pending(storage):
        if run_id == skip:
            continue
        try:
            _, meta = load(storage, run_id)
            if meta["warehouse_url"] != warehouse_url:
                continue
            delivered.append(deliver(storage, run_id))
        except (WarehouseError, StorageError, UsageError) as exc:
            failed.append(f"{run_id}: {exc}")
    return delivered, failed
