"""Promote a run to baseline through the validation gate.

With a person present (``interactive=True``) the flow run pauses in the Prefect UI with the
evidence and a form (approve, comment, reviewer); Prefect's ``pause_flow_run(wait_for_input=...)``
waits for the answer. Without one (CI, ``--non-interactive``) the threshold rule decides.
Either way the decision, who made it and the comment are stored; an approval sets the baseline.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from scenario_pipeline.compare.gate import decision_row, evidence, evidence_markdown, who
from scenario_pipeline.compare.reports import artifact_key
from scenario_pipeline.flows.param_types import DecidedBy, GateTimeout, Interactive, PollInterval, RunId, WarehouseUrl
from scenario_pipeline.flows.params import check_promote_params
from scenario_pipeline.settings import load_settings
from scenario_pipeline.warehouse.base import connect


class GateDecision(RunInput):
    """The form a reviewer fills in on the paused flow run."""

    approve: bool = Field(description="Make this run the baseline for its scenario and scale")
    comment: str = Field("", description="Why (stored with the decision)")
    reviewer: str = Field("", description="Your name (stored with the decision)")


@flow(name="promote-baseline", log_prints=True)
def promote_baseline(
    run_id: RunId,
    warehouse_url: WarehouseUrl | None = None,
    interactive: Interactive = False,
    decided_by: DecidedBy | None = None,
    timeout_s: GateTimeout = 3600,
    poll_interval_s: PollInterval = 5,
) -> dict[str, Any]:
    check_promote_params(
        run_id, warehouse_url, interactive, decided_by, timeout_s, poll_interval_s
    )  # bad input stops here, before any work
    logger = get_run_logger()
    url = warehouse_url or load_settings().resolved_warehouse_url()
    wh = connect(url)
    try:
        ev = evidence(wh, run_id)
    finally:
        wh.close()
    md = evidence_markdown(ev)
    create_markdown_artifact(md, key=artifact_key(run_id, "gate"), description=f"Evidence for promoting {run_id} to baseline")
    flow_run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    if interactive:
        logger.info(
            "Waiting for a reviewer: open %s, read the evidence artifact, then Resume with approve/reject and a comment.",
            runtime.flow_run.ui_url,
        )
        form = GateDecision.with_initial_data(
            description=md, approve=ev["recommendation"] == "approve", reviewer=decided_by or ""
        )
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=timeout_s, poll_interval=poll_interval_s, key="baseline-gate")
        except FlowPauseTimeout:
            decision = decision_row(
                ev, "expired", "interactive", decided_by or "nobody", f"no decision within {timeout_s} s", flow_run_id
            )
        else:
            decision = decision_row(
                ev,
                "approved" if answer.approve else "rejected",
                "interactive",
                answer.reviewer or decided_by or "prefect-ui",
                answer.comment,
                flow_run_id,
            )
    else:
        comment = "; ".join(ev["reasons"]) or "completed, every threshold met, no metric degraded against the baseline"
        decision = decision_row(
            ev,
            "approved" if ev["recommendation"] == "approve" else "rejected",
            "thresholds",
            decided_by or f"thresholds ({who()})",
            comment,
            flow_run_id,
        )
    wh = connect(url)
    try:
        wh.record_decision(decision)
        baseline = wh.get_baseline(ev["run"]["scenario"], ev["run"]["records"])
    finally:
        wh.close()
    logger.info(
        "Run %s: %s by %s (%s mode): %s",
        run_id,
        decision["decision"],
        decision["decided_by"],
        decision["mode"],
        decision["comment"],
    )
    return {
        "run_id": run_id,
        "decision": decision["decision"],
        "mode": decision["mode"],
        "decided_by": decision["decided_by"],
        "comment": decision["comment"],
        "reasons": ev["reasons"],
        "recommendation": ev["recommendation"],
        "previous_baseline": decision["previous_baseline"],
        "baseline": baseline["run_id"] if baseline else None,
        "decision_id": decision["decision_id"],
        "flow_run_id": flow_run_id,
    }
