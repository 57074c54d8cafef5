"""Read a dataset's small tables whole, from the URL and manifest any agent gets (cached per process)."""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from scenario_pipeline.storage import Storage

_CACHE: dict[tuple[str, str], pa.Table] = {}
_LOCK = threading.Lock()


def read_table(context: dict[str, Any], table: str) -> pa.Table:
    """Every partition of ``table`` concatenated; read once per process and dataset."""
    url = context["dataset"]["url"]
    key = (url, table)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    root = Storage.from_url(url)
    parts = []
    for part in context["dataset"]["manifest"]["tables"][table]["partitions"]:
        with root.fs.open(root.path(part["path"]), "rb") as fh:
            parts.append(pq.read_table(fh))
    tbl = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    with _LOCK:
        _CACHE[key] = tbl
    return tbl
