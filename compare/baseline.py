"""A scenario run compares itself with its scenario+scale's baseline, raises alerts and writes its report.

``compare_to_baseline`` is the one call the main flow makes after publishing (through the
``baseline-and-alerts`` task, which also marks the flow run and writes the HTML report).
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from scenario_pipeline.compare.alerts import degraded_alerts, mark_flow_run, threshold_alerts
from scenario_pipeline.compare.data import RunData, load_run
from scenario_pipeline.compare.engine import compare_runs, warehouse_rows
from scenario_pipeline.compare.failures import analyze_run
from scenario_pipeline.compare.html_report import comparison_html, run_html
from scenario_pipeline.compare.reports import comparison_artifacts, write_comparison, write_run_report
from scenario_pipeline.errors import ScenarioError, UsageError
from scenario_pipeline.storage import Storage
from scenario_pipeline.warehouse import outbox
from scenario_pipeline.warehouse.base import connect
from scenario_pipeline.warehouse.sql_warehouse import SqlWarehouse, utcnow


def _compact(base_id: str, cmp: dict[str, Any], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    rows = cmp["pairs"][0]["rows"]
    return {
        "baseline_run_id": base_id,
        "comparison_id": cmp["comparison_id"],
        "verdicts": {r["metric"]: r["verdict"] for r in rows if r["verdict"]},
        "degraded": cmp["summary"]["degraded"],
        "improved": cmp["summary"]["improved"],
        "alerts": [{k: a[k] for k in ("metric", "kind", "severity", "message")} for a in alerts],
    }


def baseline_comparison(wh: SqlWarehouse, run_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(compact summary, full comparison) against the baseline, stored with its degraded alerts; (None, None) without a baseline."""
    run = wh.require_run(run_id)
    base = wh.get_baseline(run["scenario"], run["records"])
    if base is None or base["run_id"] == run_id:
        return None, None
    before, after = load_run(wh, base["run_id"]), load_run(wh, run_id)
    try:
        cmp = compare_runs([before, after])
    except UsageError as exc:  # e.g. another seed: the baseline ran other cases
        return {"baseline_run_id": base["run_id"], "skipped": str(exc)}, None
    wh.save_comparison(cmp["comparison_id"], warehouse_rows(cmp))
    alerts = degraded_alerts(after.run, base["run_id"], cmp["comparison_id"], cmp["pairs"][0]["rows"], utcnow())
    wh.replace_alerts(run_id, "degraded", cmp["comparison_id"], alerts)
    return _compact(base["run_id"], cmp, alerts), cmp


def compare_to_baseline(warehouse_url: str, run_summary: dict[str, Any]) -> dict[str, Any] | None:
    """Compare a published run with its baseline; None when the scenario+scale has no baseline (or it is the baseline)."""
    wh = connect(warehouse_url)
    try:
        return baseline_comparison(wh, run_summary["run_id"])[0]
    finally:
        wh.close()


def _memory_run(run: dict[str, Any], metric_rows: list[dict[str, Any]], cases: pa.Table) -> RunData:
    """The run as the report needs it, from the flow's own data (when the warehouse has not got it yet)."""
    rows = cases.to_pylist()
    for c in rows:
        c["metrics"] = json.loads(c.get("metrics_json") or "{}")
        c["attributes"] = json.loads(c.get("attributes_json") or "{}")
    return RunData(run, {m["metric"]: m for m in metric_rows}, rows)


@task(name="baseline-and-alerts", cache_policy=NO_CACHE)
def after_publish(
    warehouse_url: str, storage_url: str, run: dict[str, Any], metric_rows: list[dict[str, Any]], cases: pa.Table
) -> dict[str, Any]:
    """After publish: compare with the baseline, store and raise alerts, mark the flow run, write the HTML reports."""
    logger = get_run_logger()
    storage = Storage.from_url(storage_url)
    run_id = run["run_id"]
    out: dict[str, Any] = {
        "baseline_run_id": None,
        "comparison_id": None,
        "verdicts": {},
        "degraded": [],
        "alerts": [],
        "report": None,
    }
    alerts = threshold_alerts(run, metric_rows, utcnow())
    data, history, cmp, base_id, note = _memory_run(run, metric_rows, cases), [], None, None, None
    if outbox.is_pending(storage, run_id):
        note = "The warehouse could not take this run yet; its rows wait in the outbox (no baseline comparison, no trends)."
    else:
        try:
            wh = connect(warehouse_url)
            try:
                summary, cmp = baseline_comparison(wh, run_id)
                if summary:
                    out.update(summary)
                    base_id = summary["baseline_run_id"]
                    if summary.get("skipped"):
                        logger.warning("Not compared with baseline %s: %s", base_id, summary["skipped"])
                base = wh.get_baseline(run["scenario"], run["records"])
                base_id = base_id or (base["run_id"] if base else None)
                data = load_run(wh, run_id)
                history = wh.history(run["scenario"], run["records"])
                alerts = wh.alerts(run_id)
            finally:
                wh.close()
        except ScenarioError as exc:
            note = f"Baseline comparison skipped: {exc}"
            logger.warning("%s", note)
    out["alerts"] = [{k: a[k] for k in ("metric", "kind", "severity", "message")} for a in alerts]
    for a in alerts:
        (logger.error if a["severity"] == "critical" else logger.warning)("ALERT %s: %s", a["severity"], a["message"])
    out["flow_run_tags"] = mark_flow_run(alerts, run.get("flow_run_id"))
    if cmp is not None:
        out["comparison_report"] = write_comparison(storage, cmp, comparison_html(cmp, history, base_id))
        comparison_artifacts(cmp, out["comparison_report"])
        logger.info("Against baseline %s: %s", base_id, ", ".join(f"{m} {v}" for m, v in out["verdicts"].items()))
    out["report"] = write_run_report(storage, run_id, run_html(data, analyze_run(data), history, alerts, cmp, base_id, note))
    logger.info("HTML report: %s", out["report"])
    return out
