"""Alerts: a metric below its threshold, or a degraded verdict against the baseline.

Severity says how far past the line a value is, in units of the scenario's ``min_effect`` (the
smallest difference it calls worth a verdict; 1% of the target when it declares none):
under one unit ``info``, from one unit ``warning``, from ten units ``critical``; a missing value
is ``critical``. Alerts are rows in the warehouse and, on the flow run, a tag (``alert``,
``alert:<severity>``) plus one Prefect event ``scenario.alert`` each, which an automation can
forward (docs/comparisons.md).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.logging import get_logger

SEVERITIES = ("info", "warning", "critical")


def _unit(min_effect: float | None, reference: float | None) -> float:
    if min_effect and min_effect > 0:
        return float(min_effect)
    return max(abs(reference or 0.0) * 0.01, 1e-12)


def severity(distance: float | None, unit: float) -> str:
    if distance is None or (isinstance(distance, float) and math.isnan(distance)):
        return "critical"
    k = distance / unit
    return "critical" if k >= 10 - 1e-9 else "warning" if k >= 1 - 1e-9 else "info"


def alert_id(run_id: str, kind: str, metric: str, comparison_id: str | None) -> str:
    return hashlib.sha256("\x00".join([run_id, kind, metric, comparison_id or ""]).encode()).hexdigest()[:32]


def threshold_alerts(run: dict[str, Any], metric_rows: list[dict[str, Any]], created_at: Any) -> list[dict[str, Any]]:
    """One alert per metric that misses its threshold."""
    out = []
    for m in metric_rows:
        if m.get("passed") is not False or m.get("target") is None:
            continue
        value, target, hib = m.get("value"), float(m["target"]), bool(m.get("higher_is_better", True))
        distance = None if value is None else (target - value if hib else value - target)
        sev = severity(distance, _unit(m.get("min_effect"), target))
        cmp = ">=" if hib else "<="
        shown = "missing" if value is None else f"{value:.6g}"
        out.append(
            {
                "alert_id": alert_id(run["run_id"], "threshold", m["metric"], None),
                "run_id": run["run_id"],
                "scenario": run["scenario"],
                "records": run.get("records"),
                "metric": m["metric"],
                "kind": "threshold",
                "severity": sev,
                "value": value,
                "target": target,
                "baseline_run_id": None,
                "comparison_id": None,
                "flow_run_id": run.get("flow_run_id"),
                "created_at": created_at,
                "message": f"{m['metric']} = {shown} misses its threshold {cmp} {target:g} ({sev})",
            }
        )
    return out


def degraded_alerts(
    run: dict[str, Any], baseline_run_id: str, comparison_id: str, rows: list[dict[str, Any]], created_at: Any
) -> list[dict[str, Any]]:
    """One alert per metric whose verdict against the baseline is ``degraded``."""
    out = []
    for r in rows:
        if r.get("verdict") != "degraded":
            continue
        sev = severity(abs(r["diff"]), _unit(r.get("min_effect"), r.get("before_value")))
        out.append(
            {
                "alert_id": alert_id(run["run_id"], "degraded", r["metric"], comparison_id),
                "run_id": run["run_id"],
                "scenario": run["scenario"],
                "records": run.get("records"),
                "metric": r["metric"],
                "kind": "degraded",
                "severity": sev,
                "value": r["after_value"],
                "target": r["before_value"],
                "baseline_run_id": baseline_run_id,
                "comparison_id": comparison_id,
                "flow_run_id": run.get("flow_run_id"),
                "created_at": created_at,
                "message": (
                    f"{r['metric']} degraded against baseline {baseline_run_id}: {r['before_value']:.6g} -> {r['after_value']:.6g} "
                    f"(diff {r['diff']:+.4g}, 95% CI [{r['ci_low']:+.4g}, {r['ci_high']:+.4g}], adjusted p {r['p_adjusted']:.3g}; {sev})"
                ),
            }
        )
    return out


def worst(alerts: list[dict[str, Any]]) -> str | None:
    if not alerts:
        return None
    return max((a["severity"] for a in alerts), key=SEVERITIES.index)


def mark_flow_run(alerts: list[dict[str, Any]], flow_run_id: str | None) -> list[str]:
    """Tag the flow run and emit one ``scenario.alert`` event per alert; returns the tags added.

    Best effort by design: an alert that is already in the warehouse must not fail the run
    because the Prefect API hiccuped.
    """
    if not alerts:
        return []
    tags = ["alert", f"alert:{worst(alerts)}"]
    try:
        for a in alerts:
            related = (
                [{"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}]
                if flow_run_id
                else []
            )
            emit_event(
                event="scenario.alert",
                resource={
                    "prefect.resource.id": f"scenario.run.{a['run_id']}",
                    "prefect.resource.name": str(a["run_id"]),
                    "scenario.name": str(a["scenario"]),
                    "scenario.metric": str(a["metric"]),
                    "scenario.kind": str(a["kind"]),
                    "scenario.severity": str(a["severity"]),
                    # "true" when an open or acknowledged alert for the same condition exists (warehouse/alert_state.py)
                    "scenario.recurrence": "true" if a.get("recurrence_of") else "false",
                },
                related=related,
                payload={
                    "message": a["message"],
                    "value": a["value"],
                    "target": a["target"],
                    "baseline_run_id": a["baseline_run_id"],
                    "alert_id": a["alert_id"],
                    "recurrence_of": a.get("recurrence_of"),
                },
            )
        if flow_run_id:
            with get_client(sync_client=True) as client:
                current = client.read_flow_run(UUID(flow_run_id)).tags or []
                client.update_flow_run(UUID(flow_run_id), tags=sorted(set(current) | set(tags)))
    except Exception as exc:  # noqa: BLE001 - see the docstring
        get_logger("scenario.alerts").warning("could not mark flow run %s with its alerts: %s", flow_run_id, exc)
        return []
    return tags
