"""One run's costs as the warehouse holds them: the estimate, the actuals, the estimate error."""

from __future__ import annotations

from typing import Any

from scenario_pipeline.cost.warehouse_rows import ACTUAL, ESTIMATE, cost_lines, reconciliation
from scenario_pipeline.errors import UsageError


def run_costs(wh: Any, run_id: str, shards: bool = False) -> dict[str, Any]:
    """The estimate (stage lines; shard lines with ``shards``), actuals by day and service, and the latest error."""
    lines = cost_lines(wh, run_id)
    if not lines:
        raise UsageError(
            f"run {run_id!r} has no cost lines in the warehouse; check the id and the --warehouse "
            "(runs before cost tracking have none; actuals arrive with `scenario reconcile-costs`)"
        )
    est = [ln for ln in lines if ln["source"] == ESTIMATE]
    stage_lines = [ln for ln in est if ln["shard"] is None]
    by_stage: dict[str, float] = {}
    by_item: dict[str, float] = {}
    storage = 0.0
    for ln in stage_lines:
        if ln["item"] == "s3.storage_month":
            storage += ln["amount_usd"] or 0.0
            continue
        by_stage[ln["stage"]] = by_stage.get(ln["stage"], 0.0) + (ln["amount_usd"] or 0.0)
        by_item[ln["item"]] = by_item.get(ln["item"], 0.0) + (ln["amount_usd"] or 0.0)
    per_shard: dict[int, float] = {}
    for ln in est:
        if ln["shard"] is not None and ln["item"] != "s3.storage_month":
            per_shard[int(ln["shard"])] = per_shard.get(int(ln["shard"]), 0.0) + (ln["amount_usd"] or 0.0)
    actual = [ln for ln in lines if ln["source"] == ACTUAL]
    by_day: dict[str, dict[str, Any]] = {}
    for ln in actual:
        d = by_day.setdefault(ln["usage_date"], {"day": ln["usage_date"], "usd": 0.0, "estimated": False, "services": {}})
        d["usd"] += ln["amount_usd"] or 0.0
        d["estimated"] = d["estimated"] or bool(ln["estimated"])
        d["services"][ln["item"]] = d["services"].get(ln["item"], 0.0) + (ln["amount_usd"] or 0.0)
    agent = [ln for ln in lines if ln["source"] == "agent" and ln["item"] == "cases"]
    out: dict[str, Any] = {
        "run_id": run_id,
        "scenario": lines[0]["scenario"],
        "estimate": None
        if not est
        else {
            "profile": est[0]["profile"],
            "total_usd": sum(by_stage.values()),
            "by_stage": dict(sorted(by_stage.items())),
            "by_item": dict(sorted(by_item.items())),
            "storage_usd_per_month": storage,
        },
        "actuals": None
        if not actual
        else {
            "total_usd": sum(d["usd"] for d in by_day.values()),
            "by_day": [by_day[k] for k in sorted(by_day)],
        },
        "agent_reported_usd": agent[0]["amount_usd"] if agent else None,
        "reconciliation": reconciliation(wh, run_id),
    }
    if shards:
        out["shards"] = [{"shard": k, "usd": v} for k, v in sorted(per_shard.items())]
    return out
