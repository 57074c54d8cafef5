"""Run untrusted SQL against a dataset: read-only, one SELECT, with a time limit (S14's scorer).

Three layers, any one of which stops a write:

1. Only a single statement of type SELECT is accepted (DuckDB's own parser says which type).
2. It runs on a DuckDB database file opened ``read_only``: INSERT, UPDATE, DELETE, DROP, CREATE
   and ALTER fail inside DuckDB.
3. External access is off and the configuration locked: no COPY TO, no reading or attaching
   other files, no extension installs, no way to switch either back on.

The database file is a private copy built once per process from the dataset's Parquet tables,
so even a bug in DuckDB could not touch the dataset itself. A query still running after the
time limit is interrupted.
"""

from __future__ import annotations

import atexit
import datetime as dt
import decimal
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from scenario_pipeline.storage import Storage

SIGNIFICANT_DIGITS = 10  # floats are compared after rounding to this many significant digits


@dataclass(frozen=True)
class QueryResult:
    rows: list[tuple] | None  # None when the query did not run
    error: str | None


def normalize_value(v: Any) -> Any:
    """A value in a comparable form: decimals and floats rounded to SIGNIFICANT_DIGITS, times as ISO text."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, decimal.Decimal):
        v = float(v)
    if isinstance(v, float):
        return float(f"{v:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    return v


def normalize_rows(rows: list[tuple]) -> list[tuple]:
    return [tuple(normalize_value(v) for v in row) for row in rows]


class ReadOnlyDatabase:
    """A read-only DuckDB copy of a dataset's tables, private to this process."""

    def __init__(self, context: dict[str, Any]) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="sql-sandbox-"))
        atexit.register(shutil.rmtree, self._dir, True)
        path = str(self._dir / "dataset.duckdb")
        root = Storage.from_url(context["dataset"]["url"])
        build = duckdb.connect(path)
        try:
            for table, info in context["dataset"]["manifest"]["tables"].items():
                for i, part in enumerate(info["partitions"]):
                    with root.fs.open(root.path(part["path"]), "rb") as fh:
                        arrow = pq.read_table(fh)
                    build.register("part_data", arrow)
                    build.execute(
                        f'{"CREATE TABLE" if i == 0 else "INSERT INTO"} "{table}" {"AS " if i == 0 else ""}SELECT * FROM part_data'
                    )
                    build.unregister("part_data")
        finally:
            build.close()
        self.con = duckdb.connect(
            path, read_only=True, config={"enable_external_access": False, "threads": 1, "memory_limit": "512MB"}
        )
        self.con.execute("SET GLOBAL TimeZone = 'UTC'")
        self.con.execute("SET lock_configuration = true")

    def run(self, sql: str, timeout_s: float) -> QueryResult:
        """Rows of one SELECT, or why it did not run (not a single SELECT, error, timeout)."""
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            return QueryResult(None, f"SQL does not parse: {str(exc).splitlines()[0][:200]}")
        if len(statements) != 1:
            return QueryResult(None, f"SQL must be exactly one statement, got {len(statements)}")
        if statements[0].type != duckdb.StatementType.SELECT:
            return QueryResult(None, f"only a read-only SELECT may run, got {statements[0].type.name}")
        cur = self.con.cursor()
        timer = threading.Timer(timeout_s, cur.interrupt)
        timer.start()
        try:
            rows = cur.execute(sql).fetchall()
            return QueryResult(rows, None)
        except duckdb.InterruptException:
            return QueryResult(None, f"SQL ran longer than {timeout_s:g} s and was stopped")
        except duckdb.Error as exc:
            return QueryResult(None, f"SQL failed: {str(exc).splitlines()[0][:200]}")
        finally:
            timer.cancel()
            cur.close()


_DBS: dict[str, ReadOnlyDatabase] = {}
_LOCK = threading.Lock()


def database_for(context: dict[str, Any]) -> ReadOnlyDatabase:
    """The process's read-only copy of the context's dataset, built on first use."""
    url = context["dataset"]["url"]
    with _LOCK:
        if url not in _DBS:
            _DBS[url] = ReadOnlyDatabase(context)
        return _DBS[url]
