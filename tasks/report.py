"""What a person reads on the flow run in Prefect's UI: a markdown summary and a metrics table."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from scenario_pipeline.compare.reports import artifact_key


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@task(name="report", cache_policy=NO_CACHE)
def report(summary: dict[str, Any], metric_rows: list[dict[str, Any]], failures: list[dict[str, Any]]) -> None:
    table = [
        {
            "metric": m["metric"],
            "value": _fmt(m["value"]),
            "target": _fmt(m["target"]),
            "better": ("higher" if m["higher_is_better"] else "lower") if m["higher_is_better"] is not None else "",
            "source": m.get("source") or "",
            "passed": "unmeasured" if m.get("unmeasured") else {True: "yes", False: "NO", None: ""}[m["passed"]],
        }
        for m in metric_rows
    ]
    create_table_artifact(
        table,
        key=artifact_key(summary["run_id"], "metrics"),
        description=f"Metrics of run {summary['run_id']} ({summary['scenario']})",
    )
    c = summary["counts"]
    lines = [
        f"# {summary['scenario']}: {'PASSED' if summary['passed'] else 'FAILED'}",
        "",
        f"Run `{summary['run_id']}` with agent `{summary['agent']}` on {summary['records']:,} records, "
        + (
            f"a private seed (commitment `{summary['seed_commitment'][:12]}`)."
            if summary.get("seed_commitment")
            else f"seed {summary['seed']}."
        ),
        "",
        f"- sandbox: {summary.get('sandbox') or 'n/a'}",
        f"- cases: {c['cases']:,} ({c['passed']:,} passed, {c['failed']:,} failed, {c['errors']:,} agent errors"
        + "".join(f"; {v} {k}" for k, v in c.get("errors_by_kind", {}).items())
        + ")",
        f"- shards: {c['shards']} ({c['shards_resumed']} resumed from checkpoints, {c['shards_failed']} failed)",
        f"- dataset: `{summary['paths']['dataset']}`",
        f"- checkpoints: `{summary['paths']['checkpoints']}`",
        f"- warehouse: `{summary['paths']['warehouse']}` ({summary['warehouse_rows']:,} case rows)",
        "",
        "| metric | value | target | passed |",
        "|---|---|---|---|",
        *[f"| {t['metric']} | {t['value']} | {t['target']} | {t['passed']} |" for t in table],
    ]
    if summary.get("cost"):  # the run's estimate (cost/estimate.py)
        cost = summary["cost"]
        budget = (
            f", budget ${cost['max_cost_usd']:.4f}" + (" (**budget exceeded**)" if cost["budget_exceeded"] else "")
            if cost.get("max_cost_usd")
            else ""
        )
        lines += [
            "",
            "## Cost (estimate)",
            "",
            f"${cost['estimate_usd']:.4f} at `{cost['profile']}` list prices (as of {cost['as_of']}){budget}; "
            f"storage ${cost['storage_usd_per_month']:.4f} per month kept.",
            "",
            "| stage | USD |",
            "|---|---|",
        ]
        lines += [f"| {stage} | {usd:.6f} |" for stage, usd in cost["by_stage"].items()]
    if failures:
        lines += ["", "## Most common failure reasons", "", "| reason | cases |", "|---|---|"]
        lines += [f"| {f['reason']} | {f['cases']} |" for f in failures[:10]]
    create_markdown_artifact(
        "\n".join(lines), key=artifact_key(summary["run_id"], "summary"), description=f"Summary of run {summary['run_id']}"
    )
