"""Cost rows in the warehouse's ``costs`` table (with migration 100's columns) and reconciliations.

Writes go through the back end's own transaction and statement hooks (warehouse/sql_warehouse.py:
``transaction``, ``_execute``, ``_insert_rows``), so the same code serves DuckDB and Redshift.
The Warehouse interface has no generic write, and ``replace_costs`` knows only the base columns;
this module is the one place that writes the cost columns of migration 100. Every write replaces
what it writes (DELETE then INSERT in one transaction), so writing again never doubles a row.

``source`` says where a line comes from: ``estimate`` (accounting x prices, by this package),
``cost-explorer`` (actuals), and ``agent`` (tasks/publish.py's usage rows, not written here).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from scenario_pipeline.cost.accounting import Ledger
from scenario_pipeline.cost.estimate import price
from scenario_pipeline.cost.prices import PriceProfile
from scenario_pipeline.warehouse.base import connect
from scenario_pipeline.warehouse.schema import COST_COLUMNS
from scenario_pipeline.warehouse.sql_warehouse import utcnow

ESTIMATE = "estimate"
ACTUAL = "cost-explorer"
COLUMNS = [*COST_COLUMNS, "stage", "shard", "profile", "usage_date", "estimated"]
RECONCILE_COLUMNS = [
    "run_id",
    "reconciled_at",
    "first_day",
    "last_day",
    "estimate_usd",
    "actual_usd",
    "error_usd",
    "error_pct",
    "incomplete",
]


def _tuple(row: dict[str, Any]) -> tuple:
    return tuple(row.get(c) for c in COLUMNS)


def estimate_rows(run_id: str, scenario: str, ledger: Ledger, profile: PriceProfile) -> list[dict[str, Any]]:
    """A line per stage and item (shard NULL: these add up to the run) and per shard and item."""
    now = utcnow()
    base = {"run_id": run_id, "scenario": scenario, "source": ESTIMATE, "profile": profile.name, "recorded_at": now}
    rows = []
    for stage, usage in sorted(ledger.by_stage().items()):
        rows += [
            {
                **base,
                "stage": stage,
                "shard": None,
                "item": ln.item,
                "quantity": ln.quantity,
                "unit": ln.unit,
                "amount_usd": ln.amount_usd,
            }
            for ln in price(usage, profile)
        ]
    for shard, usage in sorted(ledger.shards.items()):
        rows += [
            {
                **base,
                "stage": "fanout",
                "shard": shard,
                "item": ln.item,
                "quantity": ln.quantity,
                "unit": ln.unit,
                "amount_usd": ln.amount_usd,
            }
            for ln in price(usage, profile)
        ]
    return rows


def write_estimate(warehouse_url: str, run_id: str, scenario: str, ledger: Ledger, profile: PriceProfile) -> int:
    """Replace a run's estimate lines; returns how many were written."""
    rows = estimate_rows(run_id, scenario, ledger, profile)
    wh = connect(warehouse_url)
    try:
        with wh.transaction():
            wh._execute("DELETE FROM costs WHERE run_id = ? AND source = ?", [run_id, ESTIMATE])
            wh._insert_rows("costs", COLUMNS, [_tuple(r) for r in rows])
    finally:
        wh.close()
    return len(rows)


def replace_actuals(wh: Any, first_day: date, end_day: date, rows: list[dict[str, Any]]) -> None:
    """Replace every Cost Explorer line for days in [first_day, end_day): a revisited day is rewritten whole."""
    with wh.transaction():
        wh._execute(
            "DELETE FROM costs WHERE source = ? AND usage_date >= ? AND usage_date < ?",
            [ACTUAL, first_day.isoformat(), end_day.isoformat()],
        )
        wh._insert_rows("costs", COLUMNS, [_tuple({**r, "source": ACTUAL}) for r in rows])


def replace_reconciliations(wh: Any, rows: list[dict[str, Any]]) -> None:
    """The latest reconciliation of each run (one row per run)."""
    if not rows:
        return
    with wh.transaction():
        for r in rows:
            wh._execute("DELETE FROM cost_reconciliations WHERE run_id = ?", [r["run_id"]])
        wh._insert_rows("cost_reconciliations", RECONCILE_COLUMNS, [tuple(r.get(c) for c in RECONCILE_COLUMNS) for r in rows])


def oldest_estimated_day(wh: Any) -> date | None:
    """The oldest day Cost Explorer still called estimated last time: reconcile must revisit it."""
    found = wh.query("SELECT MIN(usage_date) FROM costs WHERE source = ? AND estimated", [ACTUAL])
    return date.fromisoformat(found[0][0]) if found and found[0][0] else None


def cost_lines(wh: Any, run_id: str) -> list[dict[str, Any]]:
    cols = ", ".join(COLUMNS)
    return wh.rows(f"SELECT {cols} FROM costs WHERE run_id = ? ORDER BY source, usage_date, stage, shard, item", [run_id])


def reconciliation(wh: Any, run_id: str) -> dict[str, Any] | None:
    found = wh.rows(f"SELECT {', '.join(RECONCILE_COLUMNS)} FROM cost_reconciliations WHERE run_id = ?", [run_id])
    return found[0] if found else None
