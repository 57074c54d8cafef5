"""The warehouse schema as versioned migrations, one DDL for DuckDB and Redshift alike.

Only types and statements both accept: VARCHAR(n), BIGINT, INTEGER, DOUBLE PRECISION, BOOLEAN,
TIMESTAMP; no ON CONFLICT, no arrays, no JSON type (JSON is stored as VARCHAR text).
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "runs, case results, scenario metrics", [
        """CREATE TABLE IF NOT EXISTS runs (
            run_id VARCHAR(256) NOT NULL,
            scenario VARCHAR(64) NOT NULL,
            agent VARCHAR(1024) NOT NULL,
            records BIGINT NOT NULL,
            cases INTEGER NOT NULL,
            seed BIGINT NOT NULL,
            status VARCHAR(32) NOT NULL,
            passed BOOLEAN,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            code_version VARCHAR(64),
            dataset_hash VARCHAR(64),
            flow_run_id VARCHAR(64),
            triggered_by VARCHAR(256),
            params_json VARCHAR(65535)
        )""",
        """CREATE TABLE IF NOT EXISTS case_results (
            run_id VARCHAR(256) NOT NULL,
            scenario VARCHAR(64) NOT NULL,
            case_id VARCHAR(256) NOT NULL,
            case_index INTEGER NOT NULL,
            shard INTEGER NOT NULL,
            passed BOOLEAN NOT NULL,
            reason VARCHAR(4096),
            metrics_json VARCHAR(65535),
            answer_digest VARCHAR(64),
            answer_bytes BIGINT,
            latency_ms DOUBLE PRECISION,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cost_usd DOUBLE PRECISION,
            attributes_json VARCHAR(65535),
            worker VARCHAR(256)
        )""",
        """CREATE TABLE IF NOT EXISTS scenario_metrics (
            run_id VARCHAR(256) NOT NULL,
            scenario VARCHAR(64) NOT NULL,
            metric VARCHAR(128) NOT NULL,
            value DOUBLE PRECISION,
            target DOUBLE PRECISION,
            higher_is_better BOOLEAN,
            passed BOOLEAN
        )""",
    ]),
]

CASE_COLUMNS = ["run_id", "scenario", "case_id", "case_index", "shard", "passed", "reason", "metrics_json", "answer_digest",
                "answer_bytes", "latency_ms", "input_tokens", "output_tokens", "cost_usd", "attributes_json", "worker"]
RUN_COLUMNS = ["run_id", "scenario", "agent", "records", "cases", "seed", "status", "passed", "started_at", "finished_at",
               "code_version", "dataset_hash", "flow_run_id", "triggered_by", "params_json"]
METRIC_COLUMNS = ["run_id", "scenario", "metric", "value", "target", "higher_is_better", "passed"]

MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER NOT NULL,
    description VARCHAR(256),
    applied_at TIMESTAMP
)"""
