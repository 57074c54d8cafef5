"""Large case loads into Redshift: ``COPY ... FORMAT AS PARQUET`` straight from the run's files on S3.

When the storage is S3 and the run has at least ``SCENARIO_REDSHIFT_COPY_MIN_ROWS`` case rows,
publishing writes a COPY manifest next to the run (``runs/{run_id}/copy.manifest``) listing its
checkpoint shards, and Redshift reads them itself with the IAM role ``SCENARIO_REDSHIFT_IAM_ROLE``
(see docs/warehouse.md for the role's policy). Redshift maps Parquet columns to the table's by
position, so ``case_results`` keeps exactly the checkpoint schema's columns, in order.

These statements cannot run against the PostgreSQL the tests use (PostgreSQL's COPY reads no
S3); the tests check the generated text, and say so.
"""

from __future__ import annotations

import json
import re

from scenario_pipeline.errors import UsageError
from scenario_pipeline.storage import Storage

IAM_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")


def sql_literal(text: str) -> str:
    """A string literal for the few statements that cannot bind parameters (COPY's source and role)."""
    if any(c == "\\" or ord(c) < 32 for c in text):
        raise UsageError(f"{text!r} holds a backslash or a control character, which a COPY literal cannot carry; rename the path")
    return "'" + text.replace("'", "''") + "'"


def copy_statement(table: str, manifest_url: str, iam_role: str) -> str:
    if not IAM_ROLE.match(iam_role):
        raise UsageError(f"SCENARIO_REDSHIFT_IAM_ROLE {iam_role!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/name)")
    if not manifest_url.startswith("s3://"):
        raise UsageError(f"COPY reads from S3 only, got {manifest_url!r}")
    return f"COPY {table} FROM {sql_literal(manifest_url)} IAM_ROLE {sql_literal(iam_role)} FORMAT AS PARQUET MANIFEST"


def use_copy(storage: Storage, warehouse_url: str, rows: int, iam_role: str | None, min_rows: int) -> bool:
    """COPY only where it can work and pays off: S3 storage, a Redshift warehouse, a role, a large run."""
    return storage.scheme == "s3" and warehouse_url.startswith("redshift://") and bool(iam_role) and rows >= min_rows


def write_manifest(storage: Storage, rel_dir: str, parquet_files: list[str]) -> str:
    """Write a COPY manifest listing exactly these files (Parquet needs each one's content_length); returns its URL."""
    entries = [
        {"url": storage.uri(p), "mandatory": True, "meta": {"content_length": storage.size(p)}} for p in sorted(parquet_files)
    ]
    rel = f"{rel_dir}/copy.manifest"
    storage.write_bytes(rel, json.dumps({"entries": entries}, indent=1).encode())
    return storage.uri(rel)
