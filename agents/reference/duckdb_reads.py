"""DuckDB queries over dataset files with the bytes they read measured."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow.dataset as pads
from pyarrow.fs import FSSpecHandler, PyFileSystem

from scenario_pipeline.agents.metered_fs import MeteredFileSystem
from scenario_pipeline.agents.reference.dataset_access import dataset_filesystem, is_local


def metered_query(context: dict[str, Any], files: list[str], sql: str, params: dict[str, Any]) -> tuple[list[tuple], int, int]:
    """Run ``sql`` (with ``{source}`` standing for the files) and return (rows, bytes read, files opened)."""
    # One thread: the Dask worker already runs one case per thread.
    con = duckdb.connect(config={"threads": 1})
    try:
        if is_local(context):
            con.execute("CALL enable_logging('FileSystem')")
            rows = con.execute(sql.format(source="read_parquet($files)"), {**params, "files": files}).fetchall()
            logged = con.execute(
                "SELECT COUNT(DISTINCT path) FILTER (WHERE op = 'OPEN'), COALESCE(SUM(bytes) FILTER (WHERE op = 'READ'), 0) "
                "FROM duckdb_logs_parsed('FileSystem')"
            ).fetchone()
            opened, read = logged if logged is not None else (0, 0)  # an aggregate: always one row
            return rows, int(read), int(opened)
        # Object stores: DuckDB scans a pyarrow dataset (filter pushdown into row groups) whose
        # reads go through a metering filesystem.
        meter = MeteredFileSystem(dataset_filesystem(context))
        ds = pads.dataset(files, format="parquet", filesystem=PyFileSystem(FSSpecHandler(meter)))
        con.register("source_ds", ds)
        rows = con.execute(sql.format(source="source_ds"), params).fetchall()
        return rows, meter.bytes_read, len(meter.files_opened)
    finally:
        con.close()
