"""The ``reconcile-costs`` flow: actual cost per run from AWS Cost Explorer, next to the estimates.

Deployed on a daily schedule (prefect.yaml, deployment ``reconcile-costs``). Each run asks Cost
Explorer about the last ``days`` days (and any older day it still called estimated), rewrites
those days' actuals in the warehouse's ``costs`` table, and reports each run's estimate error
(docs/costs.md). Idempotent: running it twice on a day leaves the same rows.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from scenario_pipeline.cost.reconcile import reconcile
from scenario_pipeline.flows.param_types import Days, Today, WarehouseUrl, check_warehouse_url
from scenario_pipeline.flows.params import check_reconcile_params, from_variable
from scenario_pipeline.settings import load_settings
from scenario_pipeline.warehouse.base import redact_url


def _usd(v: float | None) -> str:
    return "n/a" if v is None else f"${v:,.4f}"


def report_lines(result: dict[str, Any]) -> list[str]:
    """The estimate error per run, as a markdown page."""
    w = result["window"]
    lines = [
        f"# Cost reconciliation {w['start']} to {w['end']} (end excluded)",
        "",
        f"{result['pages']} Cost Explorer page(s), {result['retries']} throttled retr(y/ies); {result['lines']} actual cost lines; "
        f"untagged cost in the window {_usd(result['untagged_usd'])}.",
        "",
    ]
    if result["unknown_runs"]:
        lines += [f"Tagged runs not in this warehouse: {', '.join(result['unknown_runs'][:20])}.", ""]
    lines += ["| run | days | estimate (AWS part) | actual | error | error % | settled |", "|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        pct = "n/a" if r["error_pct"] is None else f"{r['error_pct']:+.1f}%"
        lines.append(
            f"| {r['run_id']} | {r['first_day']}..{r['last_day']} | {_usd(r['estimate_usd'])} | {_usd(r['actual_usd'])} | "
            f"{_usd(r['error_usd'])} | {pct} | {'no (Cost Explorer still estimating)' if r['incomplete'] else 'yes'} |"
        )
    return lines


@flow(name="reconcile-costs", log_prints=True)
def reconcile_costs(
    days: Days | None = None, warehouse_url: WarehouseUrl | None = None, today: Today | None = None
) -> dict[str, Any]:
    """Fill actuals for the last ``days`` days (default SCENARIO_COST_RECONCILE_DAYS, 7); ``today`` (YYYY-MM-DD) is for backfills."""
    day = check_reconcile_params(days, warehouse_url, today)  # bad input stops here, before any work
    logger = get_run_logger()
    warehouse_url = from_variable(warehouse_url, "warehouse URL") or load_settings().resolved_warehouse_url()
    check_warehouse_url(warehouse_url)
    result = reconcile(warehouse_url, days, day)
    w = result["window"]
    logger.info(
        "Cost Explorer %s..%s: %d page(s), %d throttled retries, %d lines for %d run(s) into %s.",
        w["start"],
        w["end"],
        result["pages"],
        result["retries"],
        result["lines"],
        len(result["runs"]),
        redact_url(warehouse_url),
    )
    for r in result["runs"]:
        logger.info(
            "Run %s: estimate %s, actual %s, error %s%s.",
            r["run_id"],
            _usd(r["estimate_usd"]),
            _usd(r["actual_usd"]),
            "n/a" if r["error_pct"] is None else f"{r['error_pct']:+.1f}%",
            " (days still estimated)" if r["incomplete"] else "",
        )
    if result["runs"]:
        create_table_artifact(
            [
                {
                    k: r[k]
                    for k in (
                        "run_id",
                        "first_day",
                        "last_day",
                        "estimate_usd",
                        "actual_usd",
                        "error_usd",
                        "error_pct",
                        "incomplete",
                    )
                }
                for r in result["runs"]
            ],
            key="cost-reconciliation",
            description="Estimate error per run",
        )
    create_markdown_artifact(
        "\n".join(report_lines(result)), key="cost-reconciliation-report", description="Cost Explorer actuals against estimates"
    )
    return result
