"""What only the Redshift back end has: the statements it issues (checked against what Redshift accepts),
the COPY-from-Parquet builder, and secrets that never ride in URLs or messages."""

from __future__ import annotations

import json

import pytest

from scenario_pipeline.compare.data import load_run
from scenario_pipeline.compare.engine import compare_runs, warehouse_rows
from scenario_pipeline.compare.gate import decision_row, evidence
from scenario_pipeline.errors import UsageError, WarehouseError
from scenario_pipeline.storage import Storage
from scenario_pipeline.tasks.publish import build_payload, deliver_or_queue
from scenario_pipeline.warehouse.redshift_backend import RedshiftSettings, RedshiftWarehouse, connect_kwargs
from scenario_pipeline.warehouse.redshift_copy import copy_statement, use_copy, write_manifest
from scenario_pipeline.warehouse.redshift_rules import violations
from scenario_pipeline.warehouse.schema import MIGRATIONS
from tests.helpers import free_port
from tests.warehouse_support import S12_THRESHOLDS, case_table, new_database, publish, run_row


def test_every_statement_the_back_end_issues_is_one_redshift_accepts(pg_redshift, tmp_path) -> None:  # noqa: ANN001
    url = new_database(pg_redshift)
    wh = RedshiftWarehouse(url, RedshiftSettings(batch_rows=3))  # tiny batches: several multi-row INSERTs per table
    try:
        cases = [
            {"passed": i % 4 != 0, "metrics": {"recall": 1.0 if i % 4 else 0.5, "precision": 1.0}, "cost_usd": 0.01}
            for i in range(10)
        ]
        publish(wh, "base", cases, thresholds=S12_THRESHOLDS)
        wh.record_decision(decision_row(evidence(wh, "base"), "approved", "thresholds", "t", "c", None))
        publish(wh, "next", cases, thresholds=S12_THRESHOLDS, minute=3)
        cmp = compare_runs([load_run(wh, "base"), load_run(wh, "next")])
        wh.save_comparison(cmp["comparison_id"], warehouse_rows(cmp))
        wh.replace_alerts("next", "degraded", cmp["comparison_id"], [])
        wh.replace_costs(
            "next",
            "aws",
            [
                {
                    "scenario": "s12-search",
                    "item": "s3",
                    "quantity": 1.0,
                    "unit": "GB",
                    "amount_usd": 0.02,
                    "recorded_at": cmp["runs"][0]["finished_at"],
                }
            ],
        )
        wh.history("s12-search", 1000), wh.baselines(), wh.decisions("next"), wh.comparison(cmp["comparison_id"])
        issued = list(wh.statements)
    finally:
        wh.close()
    # 10 case rows in batches of 3 -> 4 INSERT statements per published run (3 + 3 + 3 + 1).
    assert sum(s.startswith("INSERT INTO case_results") for s in issued) == 8
    issued += [s for _, _, stmts in MIGRATIONS for s in stmts]  # a fresh database ran these too
    issued.append(
        copy_statement("case_results", "s3://bucket/runs/r1/copy.manifest", "arn:aws:iam::123456789012:role/scenario-copy")
    )
    kinds = {s.split()[0].upper() for s in issued}
    assert {"CREATE", "ALTER", "INSERT", "DELETE", "SELECT", "LOCK", "COMMIT", "COPY"} <= kinds
    bad = {s[:120]: v for s in issued if (v := violations(s))}
    assert bad == {}


@pytest.mark.parametrize(
    "sql, rule",
    [
        ("INSERT INTO runs (run_id) VALUES (?) ON CONFLICT (run_id) DO NOTHING", "ON CONFLICT"),
        ("INSERT INTO runs (run_id) VALUES (?) RETURNING run_id", "RETURNING"),
        ("CREATE TABLE t (id SERIAL, x INTEGER)", "SERIAL"),
        ("CREATE TABLE t (doc JSONB)", "JSON"),
        ("CREATE TABLE t (tags TEXT[])", "arrays"),
        ("CREATE TABLE t (note TEXT)", "VARCHAR(256)"),
        ("CREATE TABLE t (x DOUBLE)", "DOUBLE PRECISION"),
        ("CREATE INDEX i ON t (x)", "indexes"),
        ("SELECT string_agg(run_id, ',') FROM runs", "LISTAGG"),
        ("SELECT DISTINCT ON (scenario) run_id FROM runs", "DISTINCT ON"),
        ("INSERT OR REPLACE INTO runs VALUES (?)", "INSERT OR REPLACE"),
    ],
)
def test_the_rule_check_catches_postgres_and_duckdb_only_sql(sql: str, rule: str) -> None:
    found = violations(sql)
    assert len(found) >= 1 and any(rule in v for v in found), found


def test_the_rule_check_ignores_string_literals_and_column_names() -> None:
    assert violations("SELECT metrics_json, attributes_json FROM case_results WHERE reason = 'ON CONFLICT TEXT[] SERIAL'") == []


def test_copy_from_parquet_statement_text(tmp_path) -> None:  # noqa: ANN001
    """COPY reads S3, which the test PostgreSQL cannot: this checks the generated text only."""
    role = "arn:aws:iam::123456789012:role/scenario-copy"
    sql = copy_statement("case_results", "s3://my-bucket/data/runs/o'brien-1/copy.manifest", role)
    assert sql == (
        "COPY case_results FROM 's3://my-bucket/data/runs/o''brien-1/copy.manifest' "
        "IAM_ROLE 'arn:aws:iam::123456789012:role/scenario-copy' FORMAT AS PARQUET MANIFEST"
    )
    with pytest.raises(UsageError, match="not an IAM role ARN"):
        copy_statement("case_results", "s3://b/k", "role/scenario-copy")
    with pytest.raises(UsageError, match="S3 only"):
        copy_statement("case_results", "file:///tmp/x", role)
    with pytest.raises(UsageError, match="backslash"):
        copy_statement("case_results", "s3://b/a\\b", role)
    # COPY only where it can work and pays off.
    s3, local = Storage("s3://bucket/prefix"), Storage.from_url(str(tmp_path))
    assert use_copy(s3, "redshift://u@h:5439/db", 200_000, role, 100_000)
    assert not use_copy(s3, "redshift://u@h:5439/db", 99_999, role, 100_000)
    assert not use_copy(s3, "redshift://u@h:5439/db", 200_000, None, 100_000)
    assert not use_copy(local, "redshift://u@h:5439/db", 200_000, role, 100_000)
    assert not use_copy(s3, "duckdb:///x.duckdb", 200_000, role, 100_000)
    # The manifest lists exactly the given files with their sizes (Parquet COPY needs content_length).
    local.write_bytes("runs/r/shards/shard-00000.parquet", b"x" * 11)
    local.write_bytes("runs/r/shards/shard-00001.parquet", b"y" * 7)
    url = write_manifest(local, "runs/r", ["runs/r/shards/shard-00001.parquet", "runs/r/shards/shard-00000.parquet"])
    doc = json.loads(local.read_bytes("runs/r/copy.manifest"))
    assert url.endswith("runs/r/copy.manifest")
    assert [(e["url"].rsplit("/", 1)[1], e["meta"]["content_length"], e["mandatory"]) for e in doc["entries"]] == [
        ("shard-00000.parquet", 11, True),
        ("shard-00001.parquet", 7, True),
    ]


def test_passwords_never_ride_in_urls_or_messages(monkeypatch: pytest.MonkeyPatch, pg_redshift) -> None:  # noqa: ANN001
    with pytest.raises(UsageError, match="SCENARIO_REDSHIFT_PASSWORD") as exc:
        connect_kwargs("redshift://admin:hunter2@example.com:5439/dev")
    assert "hunter2" not in str(exc.value)
    with pytest.raises(UsageError, match="not known"):
        connect_kwargs("redshift://admin@example.com:5439/dev?password=x")
    with pytest.raises(UsageError, match="needs a user, a host and a database"):
        connect_kwargs("redshift://example.com:5439/dev")
    monkeypatch.setenv("SCENARIO_REDSHIFT_PASSWORD", "s3cr3t-value")
    kw = connect_kwargs("redshift://admin@example.com/dev?ssl=false&timeout=5")
    assert (kw["password"], kw["port"], kw["ssl"], kw["timeout"], kw["database"]) == ("s3cr3t-value", 5439, False, 5, "dev")
    assert "password" not in connect_kwargs("redshift://admin@example.com/dev?iam=true&cluster_identifier=c1&region=eu-west-1")
    # An unreachable endpoint: a clear WarehouseError naming host and port, and not the password.
    port = free_port()
    with pytest.raises(WarehouseError, match=f"cannot reach the Redshift warehouse at 127.0.0.1:{port}/dev") as exc:
        RedshiftWarehouse(f"redshift://admin@127.0.0.1:{port}/dev?ssl=false&timeout=5")
    assert "s3cr3t-value" not in str(exc.value)


def test_local_storage_publishes_by_insert_even_with_a_copy_role(pg_redshift, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """With a role configured but local storage, publishing inserts rows (COPY needs S3) and the counts are exact."""
    monkeypatch.setenv("SCENARIO_REDSHIFT_IAM_ROLE", "arn:aws:iam::123456789012:role/scenario-copy")
    monkeypatch.setenv("SCENARIO_REDSHIFT_COPY_MIN_ROWS", "1")
    url = new_database(pg_redshift)
    cases = case_table("r", "s12-search", [{"passed": True, "metrics": {"recall": 1.0}} for _ in range(5)])
    result = deliver_or_queue(Storage.from_url(str(tmp_path)), url, build_payload(run_row("r", cases=5), cases, []))
    assert result["published"] and result["case_rows"] == 5
    assert not (tmp_path / "runs" / "r" / "copy.manifest").exists()
