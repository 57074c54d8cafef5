"""How a warehouse URL picks its back end; both are warehouse/sql_warehouse.py's SqlWarehouse."""

from __future__ import annotations

from urllib.parse import urlparse

from scenario_pipeline.errors import UsageError
from scenario_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from scenario_pipeline.warehouse.redshift_backend import RedshiftWarehouse
from scenario_pipeline.warehouse.sql_warehouse import SqlWarehouse


def redact_url(url: str) -> str:
    """A warehouse URL safe to print: any password in it is replaced."""
    p = urlparse(url)
    if p.password:
        return url.replace(f":{p.password}@", ":***@")
    return url


def connect(url: str) -> SqlWarehouse:
    scheme = urlparse(url).scheme
    if scheme == "duckdb":
        return DuckDBWarehouse(url)
    if scheme == "redshift":
        return RedshiftWarehouse(url)
    raise UsageError(
        f"warehouse URL {redact_url(url)!r} has unknown scheme {scheme!r}; use duckdb:///path/file.duckdb or redshift://user@host:5439/db"
    )
