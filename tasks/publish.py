"""Stages 3 and 5 on the flow side: aggregate the checkpointed cases, publish to the warehouse."""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from scenario_pipeline.scenarios.base import Scenario
from scenario_pipeline.warehouse.base import connect, redact_url


def clean(value: Any) -> Any:
    """NaN and infinities become None, so summaries stay valid JSON and SQL NULL."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def aggregate(scenario: Scenario, cases: pa.Table) -> tuple[dict[str, float | None], list[dict[str, Any]], bool]:
    """Run metrics, one row per metric with its threshold, and whether every threshold is met."""
    rows = cases.to_pylist()
    for r in rows:
        r["metrics"] = json.loads(r["metrics_json"] or "{}")
    metrics = {k: clean(v) for k, v in scenario.aggregate(rows).items()} if rows else {}
    metric_rows = []
    for name, value in sorted(metrics.items()):
        th = scenario.thresholds.get(name)
        metric_rows.append({
            "metric": name,
            "value": value,
            "target": th.target if th else None,
            "higher_is_better": th.higher_is_better if th else None,
            "passed": th.met(value) if th else None,
        })
    passed = bool(rows) and all(m["passed"] for m in metric_rows if m["passed"] is not None)
    return metrics, metric_rows, passed


@task(name="publish", cache_policy=NO_CACHE)
def publish(warehouse_url: str, run: dict[str, Any], cases: pa.Table, metric_rows: list[dict[str, Any]]) -> int:
    logger = get_run_logger()
    wh = connect(warehouse_url)
    try:
        rows = [{**m, "run_id": run["run_id"], "scenario": run["scenario"]} for m in metric_rows]
        wh.publish_run(run, cases, rows)
        count = wh.query("SELECT COUNT(*) FROM case_results WHERE run_id = ?", [run["run_id"]])[0][0]
    finally:
        wh.close()
    logger.info("Published run %s to %s: %d case rows, %d metrics.", run["run_id"], redact_url(warehouse_url), count, len(metric_rows))
    return int(count)
