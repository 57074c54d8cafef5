"""Hand-built runs for the warehouse and comparison tests: every value is chosen in the test."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from scenario_pipeline.tasks.checkpoint import CASE_SCHEMA

T0 = datetime(2026, 11, 22, 8, 0, 0)


def run_row(
    run_id: str, scenario: str = "s12-search", records: int = 1000, seed: int = 7, minute: int = 0, **extra: Any
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "scenario": scenario,
        "agent": extra.pop("agent", "reference"),
        "records": records,
        "cases": extra.pop("cases", 0),
        "seed": seed,
        "status": extra.pop("status", "completed"),
        "passed": extra.pop("passed", True),
        "started_at": T0 + timedelta(minutes=minute),
        "finished_at": T0 + timedelta(minutes=minute, seconds=30),
        "code_version": "test",
        "dataset_hash": extra.pop("dataset_hash", "d1"),
        "flow_run_id": None,
        "triggered_by": "tester",
        "params_json": None,
        **extra,
    }


def case_table(run_id: str, scenario: str, cases: list[dict[str, Any]]) -> pa.Table:
    """cases: dicts with passed, metrics (dict), and optionally latency_ms, cost_usd, attributes, reason."""
    rows = []
    for i, c in enumerate(cases):
        rows.append(
            {
                "run_id": run_id,
                "scenario": scenario,
                "case_id": c.get("case_id", f"case-{i:04d}"),
                "case_index": i,
                "shard": i // 10,
                "passed": c["passed"],
                "reason": c.get("reason", None if c["passed"] else "failed"),
                "metrics_json": json.dumps(c["metrics"]),
                "answer_digest": "d" * 64,
                "answer_bytes": 10,
                "latency_ms": c.get("latency_ms", 10.0),
                "input_tokens": c.get("input_tokens"),
                "output_tokens": c.get("output_tokens"),
                "cost_usd": c.get("cost_usd"),
                "attributes_json": json.dumps(c.get("attributes", {})),
                "worker": "w",
            }
        )
    return pa.Table.from_pylist(rows, schema=CASE_SCHEMA)


def metric_rows(
    run_id: str, scenario: str, values: dict[str, float], thresholds: dict[str, tuple[float, bool, float]] | None = None
) -> list[dict[str, Any]]:
    """thresholds: metric -> (target, higher_is_better, min_effect)."""
    out = []
    for name, value in sorted(values.items()):
        th = (thresholds or {}).get(name)
        passed = None if th is None else (value >= th[0] if th[1] else value <= th[0])
        out.append(
            {
                "run_id": run_id,
                "scenario": scenario,
                "metric": name,
                "value": value,
                "target": th[0] if th else None,
                "higher_is_better": th[1] if th else None,
                "passed": passed,
                "min_effect": th[2] if th else None,
            }
        )
    return out


def publish(
    wh: Any,
    run_id: str,
    cases: list[dict[str, Any]],
    scenario: str = "s12-search",
    records: int = 1000,
    seed: int = 7,
    minute: int = 0,
    thresholds: dict[str, tuple[float, bool, float]] | None = None,
    **extra: Any,
) -> None:
    """Publish a hand-built run; its run-level metrics are the means of its per-case metrics plus pass_rate."""
    names = sorted({k for c in cases for k in c["metrics"]})
    values = {
        n: sum(c["metrics"][n] for c in cases if n in c["metrics"]) / max(1, sum(n in c["metrics"] for c in cases)) for n in names
    }
    values["pass_rate"] = sum(c["passed"] for c in cases) / len(cases) if cases else 0.0
    run = run_row(run_id, scenario, records, seed, minute, cases=len(cases), **extra)
    wh.publish_run(run, case_table(run_id, scenario, cases), metric_rows(run_id, scenario, values, thresholds))


S12_THRESHOLDS = {"recall": (1.0, True, 0.01), "precision": (1.0, True, 0.01)}


def new_database(pg: Any) -> str:
    """A fresh, empty database on the test PostgreSQL; returns its redshift:// URL."""
    import uuid

    import redshift_connector

    name = f"wh_{uuid.uuid4().hex[:12]}"
    con = redshift_connector.connect(host="127.0.0.1", port=pg.port, database="postgres", user="postgres", password="", ssl=False)
    try:
        con.autocommit = True
        con.cursor().execute(f"CREATE DATABASE {name}")
    finally:
        con.close()
    return pg.url.replace("/postgres?", f"/{name}?")


def warehouse_url(kind: str, tmp_path: Any, pg: Any | None) -> str:
    if kind == "duckdb":
        return f"duckdb:///{tmp_path}/warehouse.duckdb"
    return new_database(pg)


class WarehouseDown:
    """Make a warehouse unreachable for a while, the way it happens: DuckDB's file locked by another
    process, Redshift's endpoint refusing connections."""

    def __init__(self, kind: str, url: str, pg: Any | None) -> None:
        self.kind, self.url, self.pg, self.proc = kind, url, pg, None

    def __enter__(self) -> WarehouseDown:
        import os
        import subprocess
        import sys

        # A locked DuckDB file is waited on for SCENARIO_DUCKDB_LOCK_WAIT_S (120 s by default);
        # these tests are about what happens after the wait, so keep it short while down.
        self.saved_wait = os.environ.get("SCENARIO_DUCKDB_LOCK_WAIT_S")
        os.environ["SCENARIO_DUCKDB_LOCK_WAIT_S"] = "2"
        if self.kind == "duckdb":
            from scenario_pipeline.warehouse.duckdb_backend import duckdb_path

            code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(300)"
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, str(duckdb_path(self.url))], stdout=subprocess.PIPE, text=True
            )
            assert self.proc.stdout.readline().strip() == "locked"
        else:
            self.pg.shim.close()
        return self

    def __exit__(self, *exc: object) -> None:
        import os

        if self.saved_wait is None:
            os.environ.pop("SCENARIO_DUCKDB_LOCK_WAIT_S", None)
        else:
            os.environ["SCENARIO_DUCKDB_LOCK_WAIT_S"] = self.saved_wait
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        else:
            self.pg.shim.open()
