"""The embedded default: a DuckDB file. Publishing a run replaces its rows in one transaction."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
import pyarrow as pa

from scenario_pipeline.errors import WarehouseError
from scenario_pipeline.warehouse.schema import CASE_COLUMNS, METRIC_COLUMNS, MIGRATIONS, MIGRATIONS_TABLE, RUN_COLUMNS


def duckdb_path(url: str) -> Path:
    p = urlparse(url)
    return Path(p.netloc + p.path) if p.netloc else Path(p.path)


class DuckDBWarehouse:
    def __init__(self, url: str) -> None:
        self.url = url
        self.path = duckdb_path(url)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(self.path))
        except (OSError, duckdb.Error) as exc:
            raise WarehouseError(f"cannot open the DuckDB warehouse {self.path}: {exc}") from exc
        self.migrate()

    def migrate(self) -> int:
        """Apply the migrations not yet applied; safe to run any number of times."""
        self.con.execute(MIGRATIONS_TABLE)
        applied = {v for (v,) in self.con.execute("SELECT version FROM schema_migrations").fetchall()}
        for version, description, statements in MIGRATIONS:
            if version in applied:
                continue
            self.con.execute("BEGIN")
            try:
                for stmt in statements:
                    self.con.execute(stmt)
                self.con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, description, datetime.now(timezone.utc).replace(tzinfo=None)])
                self.con.execute("COMMIT")
            except duckdb.Error:
                self.con.execute("ROLLBACK")
                raise
        return max(v for v, _, _ in MIGRATIONS)

    def publish_run(self, run: dict[str, Any], cases: pa.Table, metrics: list[dict[str, Any]]) -> None:
        run_id = run["run_id"]
        cases = cases.select(CASE_COLUMNS)
        metric_rows = pa.Table.from_pylist([{k: m.get(k) for k in METRIC_COLUMNS} for m in metrics]) if metrics else None
        self.con.execute("BEGIN")
        try:
            for table in ("case_results", "scenario_metrics", "runs"):
                self.con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            self.con.execute(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})", [run.get(c) for c in RUN_COLUMNS])
            self.con.register("_cases", cases)
            self.con.execute(f"INSERT INTO case_results ({', '.join(CASE_COLUMNS)}) SELECT {', '.join(CASE_COLUMNS)} FROM _cases")
            self.con.unregister("_cases")
            if metric_rows is not None:
                self.con.register("_metrics", metric_rows)
                self.con.execute(f"INSERT INTO scenario_metrics ({', '.join(METRIC_COLUMNS)}) SELECT {', '.join(METRIC_COLUMNS)} FROM _metrics")
                self.con.unregister("_metrics")
            self.con.execute("COMMIT")
        except duckdb.Error as exc:
            self.con.execute("ROLLBACK")
            raise WarehouseError(f"cannot publish run {run_id} to {self.path}: {exc}") from exc

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def close(self) -> None:
        self.con.close()
