"""Reference agent for S16: the zombie rule as one DuckDB query over catalog, lineage and query log.

Per table of the slice: the last read or write up to ``as_of`` (entries after it ignored), whether
anything sits downstream in the lineage, and its creation time. A table is listed when it is old
enough to judge, idle through the whole window and nothing reads from it; the reason says which
facts decided it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from scenario_pipeline.agents.reference.dataset_access import is_local
from scenario_pipeline.storage import Storage

_SQL = """
WITH log AS (
    SELECT object, max(ts) AS last_access, count(*) AS accesses
    FROM read_parquet($log) WHERE ts <= $as_of GROUP BY object
), down AS (
    SELECT upstream, count(*) AS n FROM read_parquet($lineage) GROUP BY upstream
)
SELECT o.name, o.bytes, o.created_at, log.last_access, coalesce(log.accesses, 0)
FROM read_parquet($objects) o
LEFT JOIN log ON log.object = o.name
LEFT JOIN down ON down.upstream = o.name
WHERE o.schema_name = $schema AND o.kind = 'table'
  AND o.created_at <= $cutoff
  AND (log.last_access IS NULL OR log.last_access <= $cutoff)
  AND down.n IS NULL
ORDER BY o.bytes DESC, o.name
"""


def _files(context: dict[str, Any], table: str) -> list[str]:
    root = Storage.from_url(context["dataset"]["url"])
    parts = context["dataset"]["manifest"]["tables"][table]["partitions"]
    return [root.path(p["path"]) if is_local(context) else root.uri(p["path"]) for p in parts]


class ZombieFinder:
    """Answers ``{"zombies": [{"table", "reason", "last_access", "bytes"}]}``."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def __call__(self, case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        as_of = datetime.fromisoformat(case["as_of"].replace("Z", "+00:00"))
        idle = int(case["idle_days"])
        cutoff = as_of - timedelta(days=idle)
        names = case["tables"]
        con = duckdb.connect(config={"threads": 1})
        try:
            if not is_local(context):
                con.register_filesystem(Storage.from_url(context["dataset"]["url"]).fs)
            con.execute("SET TimeZone = 'UTC'")
            rows = con.execute(
                _SQL,
                {
                    "log": _files(context, names["query_log"]),
                    "lineage": _files(context, names["lineage"]),
                    "objects": _files(context, names["catalog"]),
                    "schema": case["schema"],
                    "as_of": as_of,
                    "cutoff": cutoff,
                },
            ).fetchall()
        finally:
            con.close()
        zombies = []
        for name, nbytes, created, last, accesses in rows:
            if last is None:
                why = f"never read or written since it was created on {created:%Y-%m-%d}"
            else:
                why = f"last read or written on {last:%Y-%m-%d}, {(as_of - last).days} days before {as_of:%Y-%m-%d} ({accesses} accesses in all)"
            zombies.append(
                {
                    "table": name,
                    "reason": f"{why}; idle for the whole {idle}-day window; no view or job reads from it",
                    "last_access": None if last is None else last.isoformat(),
                    "bytes": int(nbytes),
                }
            )
        return {"zombies": zombies}
