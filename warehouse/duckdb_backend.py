"""The embedded default: a DuckDB file. Same SQL as Redshift (warehouse/sql_warehouse.py); rows go in
by scanning Arrow tables, which is DuckDB's fastest path."""

from __future__ import annotations

import uuid
from collections import deque
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

import duckdb
import pyarrow as pa

from scenario_pipeline.errors import WarehouseError
from scenario_pipeline.warehouse.sql_warehouse import SqlWarehouse


def duckdb_path(url: str) -> Path:
    p = urlparse(url)
    return Path(p.netloc + p.path) if p.netloc else Path(p.path)


class DuckDBWarehouse(SqlWarehouse):
    dialect = "duckdb"

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = duckdb_path(url)
        self.statements: deque[str] = deque(maxlen=10_000)  # what this connection ran, for tests and debugging
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(self.path))
        except (OSError, duckdb.Error) as exc:
            raise WarehouseError(f"cannot open the DuckDB warehouse {self.path}: {exc}") from exc
        try:
            self.migrate()
        except BaseException:
            self.con.close()
            raise

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.statements.append(sql)
        try:
            self.con.execute(sql, list(params or []))
        except duckdb.Error as exc:
            raise WarehouseError(f"DuckDB warehouse {self.path} rejected a statement: {exc}") from exc

    def _fetch(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        self.statements.append(sql)
        try:
            cur = self.con.execute(sql, list(params or []))
            names = [d[0] for d in cur.description or []]
            return names, cur.fetchall()
        except duckdb.Error as exc:
            raise WarehouseError(f"DuckDB warehouse {self.path} rejected a query: {exc}") from exc

    def _insert_rows(self, table: str, columns: list[str], rows: list[tuple]) -> None:
        if not rows:
            return
        arrays = [pa.array([r[i] for r in rows]) for i in range(len(columns))]
        self._insert_arrow(table, columns, pa.Table.from_arrays(arrays, names=columns))

    def _insert_arrow(self, table: str, columns: list[str], data: pa.Table) -> None:
        name = f"_in_{uuid.uuid4().hex[:12]}"
        self.con.register(name, data)
        try:
            self._execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {name}")
        finally:
            self.con.unregister(name)

    def _begin(self) -> None:
        self._execute("BEGIN")

    def _commit(self) -> None:
        self._execute("COMMIT")

    def _rollback(self) -> None:
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # nothing open: the failure happened before BEGIN took effect

    def close(self) -> None:
        self.con.close()
