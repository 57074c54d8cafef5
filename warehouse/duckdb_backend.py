"""The embedded default: a DuckDB file. Same SQL as Redshift (warehouse/sql_warehouse.py); rows go in
by scanning Arrow tables, which is DuckDB's fastest path.

DuckDB lets one process at a time open a file for writing; another process gets "Could not set
lock on file". Opening therefore waits for the lock with bounded, jittered backoff (for
concurrent runs publishing to one file), logging each wait, for up to
``SCENARIO_DUCKDB_LOCK_WAIT_S`` seconds (default 120); then it raises WarehouseError, which
publishing turns into the outbox. Every opener (publish, outbox delivery, compare/, cost/, the CLI)
comes through here, so all of them tolerate the lock the same way.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
import pyarrow as pa

from scenario_pipeline.errors import WarehouseError
from scenario_pipeline.settings import DuckDBSettings
from scenario_pipeline.warehouse.sql_warehouse import SqlWarehouse

_log = logging.getLogger("scenario_pipeline.warehouse.duckdb")


# files this process waited for in vain, and when. Within lock_wait_s of that, a further
# opener (the cost lines, the baseline comparison after a queued publish) tries once instead of
# waiting the whole bound again; any success forgets it.
_gave_up: dict[str, float] = {}
lock_waits = 0  # waits for the lock in this process (tests and debugging)


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def _logger():  # noqa: ANN202 - a Prefect run logger inside a flow or task (shown in the UI), else a plain one
    try:
        from prefect import get_run_logger  # lazy: the CLI reads the warehouse without Prefect (0.65 s)

        return get_run_logger()
    except Exception:  # noqa: BLE001 - MissingContextError outside a run
        return _log


def connect_waiting(path: Path, settings: DuckDBSettings | None = None) -> duckdb.DuckDBPyConnection:
    """Open ``path`` read-write, waiting with backoff while another process holds its lock.

    Raises WarehouseError when the lock is still held after ``lock_wait_s``; other errors at once.
    """
    global lock_waits
    settings = settings or DuckDBSettings()
    key = str(path)
    started = time.monotonic()
    budget = settings.lock_wait_s
    if started - _gave_up.get(key, float("-inf")) < budget:
        budget = 0.0  # waited the whole bound moments ago: one try, then the caller's fallback
    delay, attempt = settings.lock_backoff_s, 0
    while True:
        attempt += 1
        try:
            con = duckdb.connect(key)
        except duckdb.Error as exc:
            now = time.monotonic()
            if not _is_lock_error(exc):
                raise
            if now - started >= budget:
                if budget > 0:
                    _gave_up[key] = now
                raise WarehouseError(
                    f"cannot open the DuckDB warehouse {path}: another process holds its lock "
                    f"(waited {now - started:.1f} s of SCENARIO_DUCKDB_LOCK_WAIT_S={settings.lock_wait_s:g}): {exc}"
                ) from exc
            pause = min(delay * random.uniform(0.5, 1.0), budget - (now - started))
            lock_waits += 1
            _logger().warning(
                "DuckDB warehouse %s is locked by another process; waiting %.2f s (attempt %d, %.1f of %g s waited).",
                path,
                pause,
                attempt,
                now - started,
                budget,
            )
            time.sleep(max(pause, 0.0))
            delay = min(delay * 2, settings.lock_backoff_cap_s)
            continue
        _gave_up.pop(key, None)
        # DuckDB draws a progress bar on stdout for queries over 2 s; stdout carries `--json` summaries
        con.execute("SET enable_progress_bar = false")
        if attempt > 1:
            _logger().info(
                "DuckDB warehouse %s opened after %d attempts (%.1f s waiting for the lock).",
                path,
                attempt,
                time.monotonic() - started,
            )
        return con


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
            self.con = connect_waiting(self.path)  # waits while another process holds the file's lock
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
        with contextlib.suppress(duckdb.Error):  # nothing open: the failure happened before BEGIN took effect
            self.con.execute("ROLLBACK")

    def close(self) -> None:
        self.con.close()
