"""The warehouse interface and how a URL picks its back end."""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlparse

import pyarrow as pa

from scenario_pipeline.errors import UsageError
from scenario_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from scenario_pipeline.warehouse.redshift_backend import RedshiftWarehouse


class Warehouse(Protocol):
    """What a back end offers; both implement it through warehouse/sql_warehouse.py's SqlWarehouse."""

    url: str
    dialect: str

    def migrate(self) -> int: ...

    def publish_run(self, run: dict[str, Any], cases: pa.Table, metrics: list[dict[str, Any]],
                    alerts: list[dict[str, Any]] | None = None, costs: list[dict[str, Any]] | None = None,
                    copy_manifest: str | None = None) -> None: ...

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]: ...

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def redact_url(url: str) -> str:
    """A warehouse URL safe to print: any password in it is replaced."""
    p = urlparse(url)
    if p.password:
        return url.replace(f":{p.password}@", ":***@")
    return url


def connect(url: str) -> Warehouse:
    scheme = urlparse(url).scheme
    if scheme == "duckdb":
        return DuckDBWarehouse(url)
    if scheme == "redshift":
        return RedshiftWarehouse(url)
    raise UsageError(f"warehouse URL {redact_url(url)!r} has unknown scheme {scheme!r}; use duckdb:///path/file.duckdb or redshift://user@host:5439/db")
