"""The validation gate for promoting a run to baseline: the evidence, the threshold rule, the record.

The rule used without a person (CI, ``--non-interactive``): approve when the run completed,
meets every threshold, and no metric is ``degraded`` against the current baseline. With a person,
the same evidence is shown in the Prefect UI and the person decides; either way the decision,
who made it and the comment are stored in ``baseline_decisions``.
"""

from __future__ import annotations

import getpass
import os
import uuid
from typing import Any

from scenario_pipeline.compare.data import load_run
from scenario_pipeline.compare.engine import compare_runs, warehouse_rows
from scenario_pipeline.compare.export import md_escape, num, pair_table
from scenario_pipeline.errors import UsageError
from scenario_pipeline.warehouse.sql_warehouse import SqlWarehouse, dumps, utcnow


def evidence(wh: SqlWarehouse, run_id: str) -> dict[str, Any]:
    """What a reviewer needs: thresholds met or missed, the comparison with the current baseline, the rule's recommendation."""
    run = wh.require_run(run_id)
    base = wh.get_baseline(run["scenario"], run["records"])
    if base is not None and base["run_id"] == run_id:
        raise UsageError(f"run {run_id!r} already is the baseline of {run['scenario']} at {run['records']:,} records")
    reasons: list[str] = []
    if run["status"] != "completed":
        reasons.append(f"the run's status is {run['status']!r}, not 'completed'")
    metrics = wh.metric_rows(run_id)
    for m in metrics:
        if m["passed"] is False:
            op = ">=" if m["higher_is_better"] else "<="
            reasons.append(f"{m['metric']} = {num(m['value'])} misses its threshold {op} {num(m['target'])}")
    cmp: dict[str, Any] | None = None
    if base is not None:
        try:
            cmp = compare_runs([load_run(wh, base["run_id"]), load_run(wh, run_id)])
        except UsageError as exc:
            reasons.append(f"cannot compare with the current baseline {base['run_id']!r}: {exc}")
        else:
            wh.save_comparison(cmp["comparison_id"], warehouse_rows(cmp))
            reasons += [f"{m} is degraded against the baseline {base['run_id']!r}" for m in cmp["summary"]["degraded"]]
    return {
        "run": run,
        "baseline": base,
        "metrics": metrics,
        "comparison": cmp,
        "reasons": reasons,
        "recommendation": "approve" if not reasons else "reject",
    }


def evidence_markdown(ev: dict[str, Any]) -> str:
    run = ev["run"]
    lines = [
        f"# Promote `{md_escape(run['run_id'])}` to baseline?",
        "",
        f"{md_escape(run['scenario'])} at {run['records']:,} records, seed {run['seed']}, agent `{md_escape(run['agent'])}`, status {run['status']}.",
        f"Current baseline: `{md_escape(ev['baseline']['run_id'])}`." if ev["baseline"] else "There is no baseline yet.",
        "",
        f"**Threshold rule recommends: {ev['recommendation'].upper()}**",
        "",
    ]
    lines += [f"- {md_escape(r)}" for r in ev["reasons"]] or ["- completed, every threshold met, nothing degraded"]
    lines += ["", "| metric | value | threshold | met |", "|---|---|---|---|"]
    for m in ev["metrics"]:
        th = "" if m["target"] is None else (">= " if m["higher_is_better"] else "<= ") + num(m["target"])
        lines.append(
            f"| {md_escape(m['metric'])} | {num(m['value'])} | {th} | {'' if m['passed'] is None else 'yes' if m['passed'] else 'NO'} |"
        )
    if ev["comparison"]:
        lines += ["", "## Against the current baseline", ""] + pair_table(ev["comparison"]["pairs"][0], "quality")
    return "\n".join(lines)


def who() -> str:
    """Who runs a non-interactive gate: the CI's actor when there is one, else the local user."""
    for var in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR", "USER"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def decision_row(
    ev: dict[str, Any], decision: str, mode: str, decided_by: str, comment: str, flow_run_id: str | None
) -> dict[str, Any]:
    if decision not in ("approved", "rejected", "expired"):
        raise ValueError(decision)
    run = ev["run"]
    return {
        "decision_id": uuid.uuid4().hex,
        "run_id": run["run_id"],
        "scenario": run["scenario"],
        "records": run["records"],
        "decision": decision,
        "mode": mode,
        "decided_by": decided_by[:256],
        "comment": comment[:4096],
        "previous_baseline": ev["baseline"]["run_id"] if ev["baseline"] else None,
        "comparison_id": ev["comparison"]["comparison_id"] if ev["comparison"] else None,
        "reasons": dumps(ev["reasons"]),
        "flow_run_id": flow_run_id,
        "decided_at": utcnow(),
    }
