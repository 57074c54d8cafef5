"""Reconcile: actual daily cost per run from Cost Explorer, written next to the estimates, and the
estimate error of every run that has actuals.

Cost Explorer's recent days are incomplete (data arrives up to a day late and keeps changing until
the month closes; such days come back ``Estimated``). So each reconcile asks for the last
``days`` days plus any older day that was still estimated last time, and rewrites every day it
asked for: a day's actuals are replaced whole, never added to.

The error compares like with like: the AWS part of the estimate (compute, S3 requests, Redshift,
plus S3 storage for the days covered) against what Cost Explorer billed to the run's tag. Model
costs an agent reports are not AWS charges (unless the model runs on Bedrock: then they show up
under category ``model``) and are reported apart.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from scenario_pipeline.cost.explorer import ce_client, daily_costs_by_run
from scenario_pipeline.cost.warehouse_rows import (
    ACTUAL,
    ESTIMATE,
    oldest_estimated_day,
    replace_actuals,
    replace_reconciliations,
)
from scenario_pipeline.errors import UsageError
from scenario_pipeline.settings import CostSettings
from scenario_pipeline.warehouse.base import connect
from scenario_pipeline.warehouse.sql_warehouse import utcnow

MAX_LOOKBACK_DAYS = 365  # Cost Explorer keeps 13 months of daily data
MONTH_DAYS = 30.4375

COMPUTE = {
    "Amazon Elastic Compute Cloud - Compute",
    "EC2 - Other",
    "Amazon Elastic Container Service",
    "Amazon Elastic Container Service for Kubernetes",
    "AWS Fargate",
    "Amazon Elastic Kubernetes Service",
}


def category(service: str) -> str:
    """The estimate category a Cost Explorer service's charges belong to."""
    if service in COMPUTE:
        return "compute"
    if service == "Amazon Simple Storage Service":
        return "storage"
    if service == "Amazon Redshift":
        return "warehouse"
    if "Bedrock" in service:
        return "model"
    return "other"


def window(today: date, days: int, oldest_estimated: date | None) -> tuple[date, date]:
    """[start, end) to ask for: the last ``days`` days and today, reaching back to an unsettled day."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_LOOKBACK_DAYS:
        raise UsageError(f"days must be a whole number from 1 to {MAX_LOOKBACK_DAYS}, got {days!r}")
    start = today - timedelta(days=days)
    if oldest_estimated is not None and oldest_estimated < start:
        start = max(oldest_estimated, today - timedelta(days=MAX_LOOKBACK_DAYS))
    return start, today + timedelta(days=1)


def run_error(wh: Any, run_id: str) -> dict[str, Any] | None:
    """A run's estimate against its actuals so far (every day reconciled, not only this window)."""
    actual = wh.query(
        "SELECT SUM(amount_usd), MIN(usage_date), MAX(usage_date), MAX(CASE WHEN estimated THEN 1 ELSE 0 END) "
        "FROM costs WHERE run_id = ? AND source = ? AND stage <> 'model'",
        [run_id, ACTUAL],
    )
    if not actual or actual[0][0] is None:
        return None
    actual_usd, first, last, incomplete = actual[0]
    est = wh.query(
        "SELECT SUM(CASE WHEN item = 's3.storage_month' THEN 0 ELSE amount_usd END), "
        "SUM(CASE WHEN item = 's3.storage_month' THEN amount_usd ELSE 0 END) FROM costs "
        "WHERE run_id = ? AND source = ? AND shard IS NULL AND item NOT LIKE 'agent.%'",
        [run_id, ESTIMATE],
    )
    one_time, storage_month = (est[0][0], est[0][1]) if est and est[0][0] is not None else (None, None)
    model = wh.query("SELECT SUM(amount_usd) FROM costs WHERE run_id = ? AND source = ? AND stage = 'model'", [run_id, ACTUAL])[
        0
    ][0]
    row: dict[str, Any] = {
        "run_id": run_id,
        "first_day": first,
        "last_day": last,
        "actual_usd": float(actual_usd),
        "incomplete": bool(incomplete),
        "model_actual_usd": float(model) if model is not None else None,
    }
    if one_time is None:
        row.update(
            estimate_usd=None, error_usd=None, error_pct=None
        )  # no estimate stored (a run from before estimates were stored)
        return row
    days = (date.fromisoformat(last) - date.fromisoformat(first)).days + 1
    estimate_usd = float(one_time) + float(storage_month or 0.0) * days / MONTH_DAYS
    error = estimate_usd - float(actual_usd)
    row.update(estimate_usd=estimate_usd, error_usd=error, error_pct=(100.0 * error / float(actual_usd)) if actual_usd else None)
    return row


def reconcile(
    warehouse_url: str,
    days: int | None = None,
    today: date | None = None,
    client: Any = None,
    settings: CostSettings | None = None,
) -> dict[str, Any]:
    """Fetch, write actuals for the window, write each touched run's reconciliation; returns a report."""
    settings = settings or CostSettings()
    days = settings.reconcile_days if days is None else days
    today = today or datetime.now(UTC).date()
    wh = connect(warehouse_url)
    try:
        start, end = window(today, days, oldest_estimated_day(wh))
        fetch = daily_costs_by_run(
            client or ce_client(),
            start,
            end,
            settings.tag_key,
            settings.ce_max_attempts,
            settings.ce_backoff_s,
            settings.ce_backoff_cap_s,
        )
        tagged = [r for r in fetch.rows if r.run_id]
        ids = sorted({r.run_id for r in tagged})
        scenarios: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for run_id, scenario in wh.query(
                f"SELECT run_id, scenario FROM runs WHERE run_id IN ({', '.join('?' * len(chunk))})", chunk
            ):
                scenarios[run_id] = scenario
        now = utcnow()
        rows = [
            {
                "run_id": r.run_id,
                "scenario": scenarios.get(r.run_id, "unknown"),
                "item": r.service,
                "quantity": None,
                "unit": None,
                "amount_usd": r.amount_usd,
                "recorded_at": now,
                "stage": category(r.service),
                "usage_date": r.day.isoformat(),
                "estimated": r.estimated,
            }
            for r in tagged
        ]
        replace_actuals(wh, start, end, rows)
        runs = [e for e in (run_error(wh, run_id) for run_id in ids) if e is not None]
        replace_reconciliations(wh, [{**e, "reconciled_at": now} for e in runs])
    finally:
        wh.close()
    return {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "pages": fetch.pages,
        "retries": fetch.retries,
        "lines": len(rows),
        "untagged_usd": sum(r.amount_usd for r in fetch.rows if not r.run_id),
        "unknown_runs": sorted(i for i in ids if i not in scenarios),
        "runs": runs,
    }
