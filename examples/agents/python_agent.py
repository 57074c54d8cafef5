"""A minimal Python agent for scenario s12 (needle search): the whole contract in one function.

Run it:  PYTHONPATH=. scenario run s12 --agent examples.agents.python_agent:answer

It scans the table with DuckDB (no pruning), so it finds every needle but reads a lot: compare
its ``bytes_read_share`` with the reference agent's.
"""

from __future__ import annotations

import os
import time
from typing import Any

import duckdb


def answer(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    dataset = context["dataset"]
    # Local datasets only: the table's files are the partitions listed in the manifest.
    root = dataset["url"].removeprefix("file://")
    files = [os.path.join(root, p["path"]) for p in dataset["manifest"]["tables"][case["table"]]["partitions"]]
    pred = case["predicate"]
    started = time.perf_counter()
    rows = (
        duckdb.connect()
        .execute(f'SELECT record_id FROM read_parquet(?) WHERE "{pred["column"]}" = ?', [files, pred["value"]])
        .fetchall()
    )
    return {
        "record_ids": sorted(r[0] for r in rows),
        "bytes_read": sum(os.path.getsize(f) for f in files),  # an honest upper bound: it may read them all
        "partitions_opened": len(files),
        # Optional: what the agent spent. A model-backed agent reports its real token counts and cost.
        "usage": {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "seconds": time.perf_counter() - started},
    }
