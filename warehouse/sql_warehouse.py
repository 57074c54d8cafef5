"""What both back ends share: the same SQL text (``?`` placeholders), explicit transactions, and
every read and write the pipeline makes. A back end supplies only how to run a statement, how to
insert many rows at once, and its transaction calls.

Writes keyed by a run are idempotent: DELETE the run's rows, then INSERT, in one transaction
(Redshift has no ON CONFLICT / upsert that both engines share, and this is what its docs advise).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from scenario_pipeline.errors import UsageError, WarehouseError
from scenario_pipeline.warehouse import alert_state
from scenario_pipeline.warehouse.schema import (
    ALERT_COLUMNS,
    ALERT_EVENT_COLUMNS,
    BASELINE_COLUMNS,
    CASE_COLUMNS,
    COMPARISON_COLUMNS,
    COST_COLUMNS,
    DECISION_COLUMNS,
    METRIC_COLUMNS,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    RUN_COLUMNS,
)


def utcnow() -> datetime:
    """Naive UTC: both engines' TIMESTAMP has no zone, and every timestamp here is UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def _row(columns: list[str], record: dict[str, Any]) -> tuple:
    return tuple(record.get(c) for c in columns)


class SqlWarehouse:
    """Base of DuckDBWarehouse and RedshiftWarehouse. Subclasses implement the five hooks below."""

    url: str

    # -- hooks ---------------------------------------------------------------------------------
    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        raise NotImplementedError

    def _fetch(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        raise NotImplementedError

    def _insert_rows(self, table: str, columns: list[str], rows: list[tuple]) -> None:
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- overridable ---------------------------------------------------------------------------
    def _insert_arrow(self, table: str, columns: list[str], data: pa.Table) -> None:
        """Insert an Arrow table's rows (the case results); DuckDB overrides this to scan Arrow directly."""
        cols = [data.column(c).to_pylist() for c in columns]
        self._insert_rows(table, columns, list(zip(*cols, strict=False)) if cols else [])

    def _lock_migrations(self) -> None:
        """Serialize concurrent migrators (Redshift: LOCK); DuckDB has one writer per file anyway."""

    def _load_cases(self, cases: pa.Table, copy_manifest: str | None) -> None:
        """Load a run's case rows; ``copy_manifest`` (an S3 manifest of its Parquet files) lets Redshift COPY them."""
        self._insert_arrow("case_results", CASE_COLUMNS, cases)

    # -- transactions --------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._begin()
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._in_transaction = False
            self._rollback()
            raise
        self._in_transaction = False
        self._commit()

    _in_transaction = False

    def _read(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """A read; outside a transaction it ends at once, so no reader sits 'idle in transaction' holding locks."""
        result = self._fetch(sql, params)
        if not self._in_transaction:
            self._end_read()
        return result

    def _end_read(self) -> None:
        """Close the implicit transaction a read opened (drivers without autocommit); DuckDB has none to close."""

    # -- schema --------------------------------------------------------------------------------
    def _applied(self) -> set[int]:
        return {int(v) for (v,) in self._read("SELECT version FROM schema_migrations")[1]}

    def migrate(self) -> int:
        """Apply the migrations not yet applied, each in its own transaction; safe to run any number of times.

        Most connections find every version applied and take no lock; otherwise each missing
        version is applied under a lock and checked again, so two processes never apply one twice.
        """
        with self.transaction():
            self._execute(MIGRATIONS_TABLE)
        if self._applied() >= {v for v, _, _ in MIGRATIONS}:
            return self.schema_version()
        for version, description, statements in MIGRATIONS:
            with self.transaction():
                self._lock_migrations()
                _, applied = self._fetch("SELECT version FROM schema_migrations WHERE version = ?", [version])
                if applied:
                    continue
                for stmt in statements:
                    self._execute(stmt)
                self._execute(
                    "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                    [version, description, utcnow()],
                )
        return self.schema_version()

    def schema_version(self) -> int:
        _, rows = self._read("SELECT MAX(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    # -- reads ---------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return self._read(sql, params)[1]

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        names, data = self._read(sql, params)
        return [dict(zip(names, r, strict=False)) for r in data]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        found = self.rows(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ?", [run_id])
        return found[0] if found else None

    def require_run(self, run_id: str) -> dict[str, Any]:
        run = self.get_run(run_id)
        if run is None:
            raise UsageError(
                f"run {run_id!r} is not in the warehouse; check the id (`scenario publish {run_id}` delivers a run waiting in the outbox)"
            )
        return run

    def case_rows(self, run_id: str) -> list[dict[str, Any]]:
        return self.rows(f"SELECT {', '.join(CASE_COLUMNS)} FROM case_results WHERE run_id = ? ORDER BY case_index", [run_id])

    def metric_rows(self, run_id: str) -> list[dict[str, Any]]:
        return self.rows(f"SELECT {', '.join(METRIC_COLUMNS)} FROM scenario_metrics WHERE run_id = ? ORDER BY metric", [run_id])

    def counts(self, run_id: str) -> dict[str, int]:
        """Rows per table for one run: what tests and `scenario publish` check."""
        out = {}
        for table in ("runs", "case_results", "scenario_metrics", "alerts", "costs"):
            out[table] = int(self.query(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", [run_id])[0][0])
        return out

    def history(self, scenario: str, records: int, limit: int = 50) -> list[dict[str, Any]]:
        """The latest runs of a scenario at one scale, oldest first, each with its metrics (for trend charts)."""
        runs = self.rows(
            "SELECT run_id, agent, status, passed, started_at, finished_at, code_version FROM runs "
            f"WHERE scenario = ? AND records = ? ORDER BY finished_at DESC, run_id DESC LIMIT {int(limit)}",
            [scenario, records],
        )
        if not runs:
            return []
        ids = [r["run_id"] for r in runs]
        marks = ", ".join("?" * len(ids))
        metrics: dict[str, dict[str, float | None]] = {i: {} for i in ids}
        for m in self.rows(f"SELECT run_id, metric, value FROM scenario_metrics WHERE run_id IN ({marks})", ids):
            metrics[m["run_id"]][m["metric"]] = m["value"]
        for r in runs:
            r["metrics"] = metrics[r["run_id"]]
        return runs[::-1]

    def get_baseline(self, scenario: str, records: int) -> dict[str, Any] | None:
        found = self.rows(
            f"SELECT {', '.join(BASELINE_COLUMNS)} FROM baselines WHERE scenario = ? AND records = ? ORDER BY promoted_at DESC",
            [scenario, records],
        )
        return found[0] if found else None

    def baselines(self) -> list[dict[str, Any]]:
        return self.rows(f"SELECT {', '.join(BASELINE_COLUMNS)} FROM baselines ORDER BY scenario, records")

    def decisions(self, run_id: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE run_id = ? ", [run_id]) if run_id is not None else ("", [])
        return self.rows(
            f"SELECT {', '.join(DECISION_COLUMNS)} FROM baseline_decisions {where}ORDER BY decided_at, decision_id", params
        )

    def alerts(self, run_id: str) -> list[dict[str, Any]]:
        return self.rows(
            f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts WHERE run_id = ? ORDER BY kind, metric, alert_id", [run_id]
        )

    def comparison(self, comparison_id: str) -> list[dict[str, Any]]:
        return self.rows(
            f"SELECT {', '.join(COMPARISON_COLUMNS)} FROM comparisons WHERE comparison_id = ? ORDER BY run_b, kind, metric",
            [comparison_id],
        )

    # -- writes --------------------------------------------------------------------------------
    def publish_run(
        self,
        run: dict[str, Any],
        cases: pa.Table,
        metrics: list[dict[str, Any]],
        alerts: list[dict[str, Any]] | None = None,
        costs: list[dict[str, Any]] | None = None,
        copy_manifest: str | None = None,
    ) -> None:
        """Replace everything a run publishes, in one transaction: publishing twice leaves one copy."""
        run_id = run["run_id"]
        # absent from checkpoints before schema 3 (error_kind, read_bytes) and 4 (retries)
        for name, typ in (("error_kind", pa.string()), ("read_bytes", pa.int64()), ("retries", pa.int32())):
            if name not in cases.column_names:
                cases = cases.append_column(name, pa.nulls(cases.num_rows, typ))
        missing = [c for c in CASE_COLUMNS if c not in cases.column_names]
        if missing:
            raise WarehouseError(f"run {run_id!r}: case table lacks columns {missing}")
        cases = cases.select(CASE_COLUMNS)
        try:
            with self.transaction():
                self._execute("DELETE FROM case_results WHERE run_id = ?", [run_id])
                self._execute("DELETE FROM scenario_metrics WHERE run_id = ?", [run_id])
                self._execute("DELETE FROM alerts WHERE run_id = ? AND kind = ?", [run_id, "threshold"])
                self._execute("DELETE FROM costs WHERE run_id = ? AND source = ?", [run_id, "agent"])
                self._execute("DELETE FROM runs WHERE run_id = ?", [run_id])
                self._insert_rows("runs", RUN_COLUMNS, [_row(RUN_COLUMNS, run)])
                if cases.num_rows:
                    self._load_cases(cases, copy_manifest)
                if metrics:
                    self._insert_rows("scenario_metrics", METRIC_COLUMNS, [_row(METRIC_COLUMNS, m) for m in metrics])
                if alerts:
                    self._insert_rows("alerts", ALERT_COLUMNS, [_row(ALERT_COLUMNS, a) for a in self._link_recurrences(alerts)])
                if costs:
                    self._insert_rows("costs", COST_COLUMNS, [_row(COST_COLUMNS, c) for c in costs])
        except WarehouseError as exc:
            raise WarehouseError(f"cannot publish run {run_id!r}: {exc}") from exc

    def save_comparison(self, comparison_id: str, rows: list[dict[str, Any]]) -> None:
        """Store a comparison's rows; comparing the same runs again replaces them."""
        with self.transaction():
            self._execute("DELETE FROM comparisons WHERE comparison_id = ?", [comparison_id])
            if rows:
                self._insert_rows(
                    "comparisons",
                    COMPARISON_COLUMNS,
                    [_row(COMPARISON_COLUMNS, {**r, "comparison_id": comparison_id}) for r in rows],
                )

    def replace_alerts(self, run_id: str, kind: str, comparison_id: str | None, alerts: list[dict[str, Any]]) -> None:
        """The alerts of one kind (and comparison) for a run; raising them again replaces them."""
        with self.transaction():
            if comparison_id is None:
                self._execute("DELETE FROM alerts WHERE run_id = ? AND kind = ?", [run_id, kind])
            else:
                self._execute(
                    "DELETE FROM alerts WHERE run_id = ? AND kind = ? AND comparison_id = ?", [run_id, kind, comparison_id]
                )
            if alerts:
                self._insert_rows("alerts", ALERT_COLUMNS, [_row(ALERT_COLUMNS, a) for a in self._link_recurrences(alerts)])

    # -- the alert workflow (warehouse/alert_state.py has the rules) ------------------------------
    def _link_recurrences(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Inside the writing transaction: each alert whose condition (scenario, records, metric, kind) already
        has an open or acknowledged alert becomes a recurrence of it (``recurrence_of``); otherwise it opens
        a new alert. A resolved alert is never reopened: its condition coming back opens a new one."""
        out = []
        for a in alerts:
            where, params = (
                "scenario = ? AND metric = ? AND kind = ? AND recurrence_of IS NULL",
                [
                    a["scenario"],
                    a["metric"],
                    a["kind"],
                ],
            )
            if a.get("records") is None:
                where += " AND records IS NULL"
            else:
                where += " AND records = ?"
                params.append(a["records"])
            _, found = self._fetch(f"SELECT alert_id FROM alerts WHERE {where} ORDER BY created_at, alert_id", params)
            ids = [str(r[0]) for r in found if r[0] != a["alert_id"]]
            events = self._alert_events(ids)
            live = [i for i in ids if alert_state.state(events.get(i, []))["status"] != "resolved"]
            out.append({**a, "recurrence_of": live[0] if live else None})
        return out

    def _alert_events(self, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each alert's events, oldest first (works inside and outside a transaction)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(alert_ids), 500):
            chunk = alert_ids[start : start + 500]
            names, data = self._fetch(
                f"SELECT {', '.join(ALERT_EVENT_COLUMNS)} FROM alert_events WHERE alert_id IN ({', '.join('?' * len(chunk))}) "
                "ORDER BY acted_at, action",
                chunk,
            )
            for row in data:
                e = dict(zip(names, row, strict=False))
                out.setdefault(e["alert_id"], []).append(e)
        if not self._in_transaction:
            self._end_read()
        return out

    def list_alerts(
        self, severity: str | None = None, status: str | None = None, scenario: str | None = None
    ) -> list[dict[str, Any]]:
        """The alerts people work (one per open problem, recurrences counted in), with status, who and when,
        and history; open first, then acknowledged, then resolved, the worst and newest first."""
        alert_state.check_filters(severity, status)
        where, params = "recurrence_of IS NULL", list[Any]()
        if severity is not None:
            where, params = where + " AND severity = ?", [*params, severity]
        if scenario is not None:
            where, params = where + " AND scenario = ?", [*params, scenario]
        problems = self.rows(f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts WHERE {where} ORDER BY created_at, alert_id", params)
        repeats: dict[str, list[dict[str, Any]]] = {}
        rwhere, rparams = (
            ("recurrence_of IS NOT NULL AND scenario = ?", [scenario]) if scenario else ("recurrence_of IS NOT NULL", [])
        )
        for r in self.rows(
            f"SELECT alert_id, run_id, severity, created_at, recurrence_of FROM alerts WHERE {rwhere} ORDER BY created_at, alert_id",
            rparams,
        ):
            repeats.setdefault(r["recurrence_of"], []).append(r)
        events = self._alert_events([p["alert_id"] for p in problems])
        out = []
        for p in problems:
            history = events.get(p["alert_id"], [])
            seen = [p, *repeats.get(p["alert_id"], [])]
            item = {
                **p,
                **alert_state.state(history),
                "occurrences": len(seen),
                "last_run_id": seen[-1]["run_id"],
                "last_seen_at": seen[-1]["created_at"],
                "history": [{k: e[k] for k in ("action", "acted_by", "acted_at", "comment")} for e in history],
            }
            if status is None or item["status"] == status:
                out.append(item)
        return sorted(out, key=alert_state.sort_key)

    def find_alert(self, alert_id: str) -> dict[str, Any]:
        """The alert with this id, or the only one whose id starts with it; a one-line UsageError otherwise."""
        prefix = alert_state.check_id(alert_id)
        names, data = self._fetch(
            f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts WHERE alert_id LIKE ? ORDER BY alert_id", [prefix + "%"]
        )
        if not self._in_transaction:
            self._end_read()
        found = {r["alert_id"]: r for r in (dict(zip(names, row, strict=False)) for row in data)}
        if prefix in found:
            return found[prefix]
        if not found:
            raise UsageError(f"no alert has an id starting {prefix!r}; `scenario alerts` lists them (check --warehouse)")
        if len(found) > 1:
            shown = ", ".join(sorted(found)[:5]) + (", ..." if len(found) > 5 else "")
            raise UsageError(f"alert id {prefix!r} is ambiguous: {len(found)} alerts start with it ({shown}); give more digits")
        return next(iter(found.values()))

    def acknowledge_alert(self, alert_id: str, by: str, comment: str | None = None, at: Any = None) -> dict[str, Any]:
        """Someone is on it: an open alert becomes acknowledged (who, when, comment kept in alert_events)."""
        return self._act_on_alert("ack", alert_id, by, comment, at)

    def resolve_alert(self, alert_id: str, by: str, comment: str | None = None, at: Any = None) -> dict[str, Any]:
        """Fixed: an open or acknowledged alert becomes resolved; its condition recurring later opens a new alert."""
        return self._act_on_alert("resolve", alert_id, by, comment, at)

    def _act_on_alert(self, action: str, alert_id: str, by: str, comment: str | None, at: Any) -> dict[str, Any]:
        by, comment = alert_state.check_actor(by), alert_state.check_comment(comment)
        with self.transaction():
            alert = self.find_alert(alert_id)
            short = alert["alert_id"][:8]
            if alert.get("recurrence_of"):
                raise UsageError(
                    f"alert {short} is a repeat of alert {alert['recurrence_of'][:8]} and shares its status; "
                    f"act on that one: `scenario alerts {action} {alert['recurrence_of'][:8]} --by NAME`"
                )
            alert_state.check_transition(
                short, alert_state.state(self._alert_events([alert["alert_id"]]).get(alert["alert_id"], [])), action
            )
            event = {
                "alert_id": alert["alert_id"],
                "action": alert_state.ACTIONS[action],
                "acted_by": by,
                "comment": comment,
                "acted_at": at or utcnow(),
            }
            self._insert_rows("alert_events", ALERT_EVENT_COLUMNS, [_row(ALERT_EVENT_COLUMNS, event)])
        return next(a for a in self.list_alerts(scenario=alert["scenario"]) if a["alert_id"] == alert["alert_id"])

    def replace_costs(self, run_id: str, source: str, costs: list[dict[str, Any]]) -> None:
        """A run's cost lines from one source (``agent`` usage, a cloud bill, ...); again replaces them."""
        with self.transaction():
            self._execute("DELETE FROM costs WHERE run_id = ? AND source = ?", [run_id, source])
            if costs:
                self._insert_rows(
                    "costs", COST_COLUMNS, [_row(COST_COLUMNS, {**c, "run_id": run_id, "source": source}) for c in costs]
                )

    def record_decision(self, decision: dict[str, Any]) -> None:
        """Store a gate decision; an approval also makes the run its scenario+scale's baseline (same transaction)."""
        with self.transaction():
            self._execute("DELETE FROM baseline_decisions WHERE decision_id = ?", [decision["decision_id"]])
            self._insert_rows("baseline_decisions", DECISION_COLUMNS, [_row(DECISION_COLUMNS, decision)])
            if decision["decision"] == "approved":
                self._execute(
                    "DELETE FROM baselines WHERE scenario = ? AND records = ?", [decision["scenario"], decision["records"]]
                )
                self._insert_rows(
                    "baselines", BASELINE_COLUMNS, [_row(BASELINE_COLUMNS, {**decision, "promoted_at": decision["decided_at"]})]
                )


def dumps(obj: Any) -> str:
    """JSON for a VARCHAR column: compact and stable."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
