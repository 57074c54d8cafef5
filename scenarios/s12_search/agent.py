"""Reference agent for S12: manifest statistics to prune, then DuckDB with Bloom-filter pushdown.

DuckDB checks each row group's Parquet Bloom filter for ``tag`` and reads only the row groups
that may hold the token. Bytes read and files opened are measured, not estimated: from DuckDB's
own file-system log for local datasets, and from a metering filesystem for object stores.
"""

from __future__ import annotations

from typing import Any

from scenario_pipeline.agents.reference.dataset_access import candidate_files
from scenario_pipeline.agents.reference.duckdb_reads import metered_query


class NeedleSearchAgent:
    """Answers ``{"record_ids": [...], "bytes_read": n, "partitions_opened": n}``."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def __call__(self, case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        pred = case["predicate"]
        column, value = pred["column"], pred["value"]
        files = candidate_files(context, case["table"], column, value)
        if not files:
            return {"record_ids": [], "bytes_read": 0, "partitions_opened": 0}
        rows, bytes_read, opened = metered_query(
            context, files, f'SELECT record_id FROM {{source}} WHERE "{column}" = $value ORDER BY record_id', {"value": value}
        )
        return {"record_ids": [int(r[0]) for r in rows], "bytes_read": bytes_read, "partitions_opened": opened}
