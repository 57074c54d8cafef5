"""Stages 3 and 5 on the flow side: aggregate the checkpointed cases, publish to the warehouse.

Publishing never fails a run because the warehouse is down: the rows then wait in storage (the
outbox, warehouse/outbox.py) and `scenario publish RUN_ID`, or the next run that reaches the same
warehouse, delivers them. Writes are idempotent per run, so a redelivery never doubles a row.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prefect import get_run_logger, runtime, task
from prefect.cache_policies import NO_CACHE

from scenario_pipeline.compare.alerts import threshold_alerts
from scenario_pipeline.errors import UsageError, WarehouseError
from scenario_pipeline.scenarios.base import Scenario
from scenario_pipeline.scenarios.declared import find
from scenario_pipeline.settings import RedshiftSettings, load_settings
from scenario_pipeline.storage import Storage, normalize_url, run_dir
from scenario_pipeline.tasks.checkpoint import shard_path
from scenario_pipeline.warehouse import outbox
from scenario_pipeline.warehouse.base import connect, redact_url
from scenario_pipeline.warehouse.redshift_copy import use_copy, write_manifest
from scenario_pipeline.warehouse.sql_warehouse import utcnow


def clean(value: Any) -> Any:
    """NaN and infinities become None, so summaries stay valid JSON and SQL NULL."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def aggregate(scenario: Scenario, cases: pa.Table) -> tuple[dict[str, float | None], list[dict[str, Any]], bool]:
    """Run metrics (scenarios/declared.py), one row per metric with its declaration and threshold,
    and whether every threshold is met. A thresholded metric the harness could not measure (None)
    is reported with ``passed`` None and ``unmeasured`` True: shown, never counted as met."""
    rows = cases.to_pylist()
    for r in rows:
        r["metrics"] = json.loads(r["metrics_json"] or "{}")
    metrics = {k: clean(v) for k, v in scenario.aggregate(rows).items()} if rows else {}
    metric_rows = []
    for name, value in sorted(metrics.items()):
        decl = find(scenario.metrics, name, "run")
        th = scenario.thresholds.get(name)
        unmeasured = th is not None and value is None and decl is not None and decl.source == "measured"
        metric_rows.append(
            {
                "metric": name,
                "value": value,
                "target": th.target if th else None,
                "higher_is_better": decl.higher_is_better if decl else None,
                "passed": None if unmeasured else (th.met(value) if th else None),
                "min_effect": decl.min_effect if decl else None,
                "source": decl.source if decl else None,
                "unmeasured": unmeasured,
            }
        )
    passed = bool(rows) and all(m["passed"] for m in metric_rows if m["passed"] is not None)
    return metrics, metric_rows, passed


def usage_costs(run: dict[str, Any], cases: pa.Table) -> list[dict[str, Any]]:
    """The agent's own usage, summed over cases: tokens in and out, dollars, cases."""

    def total(col: str) -> float | None:
        v = pc.sum(cases.column(col)).as_py() if cases.num_rows else None
        return None if v is None else float(v)

    now = utcnow()
    base = {"run_id": run["run_id"], "scenario": run["scenario"], "source": "agent", "recorded_at": now}
    return [
        {**base, "item": "input_tokens", "quantity": total("input_tokens"), "unit": "tokens", "amount_usd": None},
        {**base, "item": "output_tokens", "quantity": total("output_tokens"), "unit": "tokens", "amount_usd": None},
        {**base, "item": "cases", "quantity": float(cases.num_rows), "unit": "cases", "amount_usd": total("cost_usd")},
    ]


def build_payload(run: dict[str, Any], cases: pa.Table, metric_rows: list[dict[str, Any]]) -> outbox.Payload:
    metrics = [{**m, "run_id": run["run_id"], "scenario": run["scenario"]} for m in metric_rows]
    return outbox.Payload(run, cases, metrics, threshold_alerts(run, metric_rows, utcnow()), usage_costs(run, cases))


def _copy_manifest(storage: Storage, warehouse_url: str, run_id: str, cases: pa.Table) -> str | None:
    """For a large run on S3 bound for Redshift: a COPY manifest of exactly the shards these rows came from."""
    if not warehouse_url.startswith("redshift://"):
        return None
    settings = RedshiftSettings()
    if not use_copy(storage, warehouse_url, cases.num_rows, settings.iam_role, settings.copy_min_rows):
        return None
    shards = sorted(set(cases.column("shard").to_pylist()))
    return write_manifest(storage, run_dir(run_id), [shard_path(run_id, s) for s in shards])


def deliver_or_queue(
    storage: Storage, warehouse_url: str, payload: outbox.Payload, copy_from_checkpoints: bool = True
) -> dict[str, Any]:
    """Publish a run, first delivering what waits for the same warehouse; queue it if the warehouse cannot take it.

    Returns {"published": bool, "case_rows": int, "outbox": url|None, "error": str|None, "delivered": [...], "still_waiting": [...]}.
    """
    run_id = payload.run_id
    result: dict[str, Any] = {
        "published": False,
        "case_rows": 0,
        "outbox": None,
        "error": None,
        "delivered": [],
        "still_waiting": [],
    }
    try:
        manifest = _copy_manifest(storage, warehouse_url, run_id, payload.cases) if copy_from_checkpoints else None
        wh = connect(warehouse_url)
        try:
            wh.publish_run(payload.run, payload.cases, payload.metrics, payload.alerts, payload.costs, copy_manifest=manifest)
            result["case_rows"] = wh.counts(run_id)["case_results"]
        finally:
            wh.close()
    except (WarehouseError, UsageError) as exc:  # unreachable, refused, or misconfigured: keep the rows, fix, `scenario publish`
        result["error"] = str(exc)
        result["outbox"] = outbox.queue(storage, warehouse_url, payload, str(exc))
        return result
    result["published"] = True
    if outbox.is_pending(storage, run_id):
        outbox.clear(storage, run_id)  # an older attempt of this run: the rows just published replace it
    result["delivered"], result["still_waiting"] = outbox.deliver_pending(storage, warehouse_url, skip=run_id)
    return result


def _storage_of_flow_run() -> Storage:
    """The flow run's storage, resolved as flows/params.resolve_params does."""
    url = runtime.flow_run.parameters.get("storage_url") if runtime.flow_run.id else None
    return Storage.from_url(normalize_url(url or load_settings().resolved_storage_url()))


@task(name="publish", cache_policy=NO_CACHE)
def publish(
    warehouse_url: str, run: dict[str, Any], cases: pa.Table, metric_rows: list[dict[str, Any]], storage_url: str | None = None
) -> int:
    """Publish a run; returns its case rows now in the warehouse (0 when they wait in the outbox)."""
    logger = get_run_logger()
    storage = Storage.from_url(storage_url) if storage_url else _storage_of_flow_run()
    result = deliver_or_queue(storage, warehouse_url, build_payload(run, cases, metric_rows))
    where = redact_url(warehouse_url)
    for d in result["delivered"]:
        logger.info("Delivered run %s from the outbox to %s: %d case rows.", d["run_id"], where, d["counts"]["case_results"])
    for w in result["still_waiting"]:
        logger.warning("Still waiting in the outbox: %s", w)
    if not result["published"]:
        logger.warning(
            "The warehouse %s cannot take run %s now (%s). Its %d case rows wait in %s; "
            "`scenario publish %s` (or the next run) delivers them.",
            where,
            run["run_id"],
            result["error"],
            cases.num_rows,
            result["outbox"],
            run["run_id"],
        )
        return 0
    logger.info("Published run %s to %s: %d case rows, %d metrics.", run["run_id"], where, result["case_rows"], len(metric_rows))
    return int(result["case_rows"])
