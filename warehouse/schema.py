"""The warehouse schema as versioned migrations, one DDL for DuckDB and Redshift alike.

Only types and statements both accept: VARCHAR(n), BIGINT, INTEGER, DOUBLE PRECISION, BOOLEAN,
TIMESTAMP; no ON CONFLICT, no arrays, no JSON type (JSON is stored as VARCHAR text).
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "runs, case results, scenario metrics",
        [
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
        ],
    ),
    (
        2,
        "comparisons, baselines and gate decisions, alerts, costs; metric min_effect",
        [
            # The smallest before/after difference the scenario calls worth a verdict (Threshold.min_effect).
            "ALTER TABLE scenario_metrics ADD COLUMN min_effect DOUBLE PRECISION",
            """CREATE TABLE IF NOT EXISTS comparisons (
            comparison_id VARCHAR(64) NOT NULL,
            created_at TIMESTAMP NOT NULL,
            scenario VARCHAR(64) NOT NULL,
            records BIGINT NOT NULL,
            seed BIGINT NOT NULL,
            run_a VARCHAR(256) NOT NULL,
            run_b VARCHAR(256) NOT NULL,
            metric VARCHAR(128) NOT NULL,
            kind VARCHAR(16) NOT NULL,
            test VARCHAR(32),
            n BIGINT NOT NULL,
            before_value DOUBLE PRECISION,
            after_value DOUBLE PRECISION,
            diff DOUBLE PRECISION,
            ci_low DOUBLE PRECISION,
            ci_high DOUBLE PRECISION,
            p_value DOUBLE PRECISION,
            p_adjusted DOUBLE PRECISION,
            min_effect DOUBLE PRECISION,
            higher_is_better BOOLEAN,
            verdict VARCHAR(16)
        )""",
            """CREATE TABLE IF NOT EXISTS baselines (
            scenario VARCHAR(64) NOT NULL,
            records BIGINT NOT NULL,
            run_id VARCHAR(256) NOT NULL,
            decision_id VARCHAR(64) NOT NULL,
            promoted_at TIMESTAMP NOT NULL
        )""",
            """CREATE TABLE IF NOT EXISTS baseline_decisions (
            decision_id VARCHAR(64) NOT NULL,
            run_id VARCHAR(256) NOT NULL,
            scenario VARCHAR(64) NOT NULL,
            records BIGINT NOT NULL,
            decision VARCHAR(16) NOT NULL,
            mode VARCHAR(16) NOT NULL,
            decided_by VARCHAR(256),
            comment VARCHAR(4096),
            previous_baseline VARCHAR(256),
            comparison_id VARCHAR(64),
            reasons VARCHAR(65535),
            flow_run_id VARCHAR(64),
            decided_at TIMESTAMP NOT NULL
        )""",
            """CREATE TABLE IF NOT EXISTS alerts (
            alert_id VARCHAR(64) NOT NULL,
            run_id VARCHAR(256) NOT NULL,
            scenario VARCHAR(64) NOT NULL,
            records BIGINT,
            metric VARCHAR(128) NOT NULL,
            kind VARCHAR(16) NOT NULL,
            severity VARCHAR(16) NOT NULL,
            value DOUBLE PRECISION,
            target DOUBLE PRECISION,
            baseline_run_id VARCHAR(256),
            comparison_id VARCHAR(64),
            message VARCHAR(4096),
            flow_run_id VARCHAR(64),
            created_at TIMESTAMP NOT NULL
        )""",
            """CREATE TABLE IF NOT EXISTS costs (
            run_id VARCHAR(256) NOT NULL,
            scenario VARCHAR(64) NOT NULL,
            source VARCHAR(64) NOT NULL,
            item VARCHAR(128) NOT NULL,
            quantity DOUBLE PRECISION,
            unit VARCHAR(32),
            amount_usd DOUBLE PRECISION,
            recorded_at TIMESTAMP NOT NULL
        )""",
        ],
    ),
    (
        3,
        "typed case errors, harness-measured reads, metric sources, sandbox and seed commitment of a run",
        [
            "ALTER TABLE case_results ADD COLUMN error_kind VARCHAR(32)",
            "ALTER TABLE case_results ADD COLUMN read_bytes BIGINT",
            # scored | measured | claimed | diagnostic | operations (scenarios/base.py Metric.source)
            "ALTER TABLE scenario_metrics ADD COLUMN source VARCHAR(16)",
            "ALTER TABLE runs ADD COLUMN sandbox VARCHAR(512)",
            # HMAC of a private seed under the harness key; the seed column then holds -1
            "ALTER TABLE runs ADD COLUMN seed_commitment VARCHAR(64)",
        ],
    ),
    (
        4,
        "retries of each case (rate limits, unavailable agents)",
        [
            "ALTER TABLE case_results ADD COLUMN retries INTEGER",
        ],
    ),
    # Version 5 is the alert workflow (alert_events). Version 4 above is already taken (retries): a migration
    # written in parallel (e.g. case_details) takes the next free number at merge time, never 4 or 5 again.
    # The runner applies every listed version a database lacks, whatever the numbers around it, so gaps
    # (5 -> 100) and a lower number merged later are both fine.
    (
        5,
        "alert workflow: acknowledged / resolved by whom, when, with what comment; recurrences linked to their open alert",
        [
            # the alert_id of the open or acknowledged alert this row repeats (same scenario, records, metric,
            # kind); NULL when the row opened a problem of its own. The status is derived from alert_events.
            "ALTER TABLE alerts ADD COLUMN recurrence_of VARCHAR(64)",
            # append-only history: one row per action a person took on an alert (acknowledged, resolved)
            """CREATE TABLE IF NOT EXISTS alert_events (
            alert_id VARCHAR(64) NOT NULL,
            action VARCHAR(16) NOT NULL,
            acted_by VARCHAR(256) NOT NULL,
            comment VARCHAR(4096),
            acted_at TIMESTAMP NOT NULL
        )""",
        ],
    ),
    # its rows are written by cost/warehouse_rows.py ---
    (
        100,
        "cost lines by stage and shard, Cost Explorer days, estimate reconciliations",
        [
            "ALTER TABLE costs ADD COLUMN stage VARCHAR(32)",  # generate, fanout, checkpoints, publish
            "ALTER TABLE costs ADD COLUMN shard INTEGER",  # a fan-out shard's own line; NULL for a stage's line
            "ALTER TABLE costs ADD COLUMN profile VARCHAR(128)",  # the price profile an estimate used
            "ALTER TABLE costs ADD COLUMN usage_date VARCHAR(10)",  # YYYY-MM-DD of a Cost Explorer day
            "ALTER TABLE costs ADD COLUMN estimated BOOLEAN",  # Cost Explorer still calls that day estimated
            """CREATE TABLE IF NOT EXISTS cost_reconciliations (
            run_id VARCHAR(256) NOT NULL,
            reconciled_at TIMESTAMP NOT NULL,
            first_day VARCHAR(10),
            last_day VARCHAR(10),
            estimate_usd DOUBLE PRECISION,
            actual_usd DOUBLE PRECISION,
            error_usd DOUBLE PRECISION,
            error_pct DOUBLE PRECISION,
            incomplete BOOLEAN
        )""",
        ],
    ),
]

# case_results must keep exactly CASE_SCHEMA's columns in its order (tasks/checkpoint.py): Redshift's
# COPY ... FORMAT AS PARQUET maps the checkpoint files' columns to the table's by position.
CASE_COLUMNS = [
    "run_id",
    "scenario",
    "case_id",
    "case_index",
    "shard",
    "passed",
    "reason",
    "metrics_json",
    "answer_digest",
    "answer_bytes",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "attributes_json",
    "worker",
    "error_kind",
    "read_bytes",
    "retries",
]
RUN_COLUMNS = [
    "run_id",
    "scenario",
    "agent",
    "records",
    "cases",
    "seed",
    "status",
    "passed",
    "started_at",
    "finished_at",
    "code_version",
    "dataset_hash",
    "flow_run_id",
    "triggered_by",
    "params_json",
    "sandbox",
    "seed_commitment",
]
METRIC_COLUMNS = ["run_id", "scenario", "metric", "value", "target", "higher_is_better", "passed", "min_effect", "source"]
COMPARISON_COLUMNS = [
    "comparison_id",
    "created_at",
    "scenario",
    "records",
    "seed",
    "run_a",
    "run_b",
    "metric",
    "kind",
    "test",
    "n",
    "before_value",
    "after_value",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "min_effect",
    "higher_is_better",
    "verdict",
]
BASELINE_COLUMNS = ["scenario", "records", "run_id", "decision_id", "promoted_at"]
DECISION_COLUMNS = [
    "decision_id",
    "run_id",
    "scenario",
    "records",
    "decision",
    "mode",
    "decided_by",
    "comment",
    "previous_baseline",
    "comparison_id",
    "reasons",
    "flow_run_id",
    "decided_at",
]
ALERT_COLUMNS = [
    "alert_id",
    "run_id",
    "scenario",
    "records",
    "metric",
    "kind",
    "severity",
    "value",
    "target",
    "baseline_run_id",
    "comparison_id",
    "message",
    "flow_run_id",
    "created_at",
    "recurrence_of",
]
ALERT_EVENT_COLUMNS = ["alert_id", "action", "acted_by", "comment", "acted_at"]
COST_COLUMNS = ["run_id", "scenario", "source", "item", "quantity", "unit", "amount_usd", "recorded_at"]

# The tables of migrations 1, 2 and 5: results, comparisons, baselines, decisions, alerts and their events, costs.
TABLES = [
    "runs",
    "case_results",
    "scenario_metrics",
    "comparisons",
    "baselines",
    "baseline_decisions",
    "alerts",
    "alert_events",
    "costs",
]

MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER NOT NULL,
    description VARCHAR(256),
    applied_at TIMESTAMP
)"""
