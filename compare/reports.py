"""Where reports go: HTML files in storage (the data folder by default) and Prefect artifacts."""

from __future__ import annotations

import json
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from scenario_pipeline.compare.export import flat_rows, num, public, pval, to_markdown
from scenario_pipeline.storage import Storage, run_dir


def artifact_key(name: str, what: str) -> str:
    """A Prefect artifact key for ``what`` of a run, comparison or suite: lowercase letters, digits and dashes only."""
    safe = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return f"{what}-{safe}"[:100]


def comparison_dir(comparison_id: str) -> str:
    return f"comparisons/{comparison_id}"


def write_comparison(storage: Storage, cmp: dict[str, Any], html: str) -> str:
    """The comparison's HTML report and JSON, under comparisons/{id}/; returns the report's URL."""
    base = comparison_dir(cmp["comparison_id"])
    storage.write_bytes(f"{base}/comparison.json", json.dumps(public(cmp), indent=1, default=str).encode())
    storage.write_bytes(f"{base}/report.html", html.encode())
    return storage.uri(f"{base}/report.html")


def write_run_report(storage: Storage, run_id: str, html: str) -> str:
    storage.write_bytes(f"{run_dir(run_id)}/report.html", html.encode())
    return storage.uri(f"{run_dir(run_id)}/report.html")


def comparison_artifacts(cmp: dict[str, Any], report_url: str | None) -> None:
    """A markdown artifact (the whole comparison) and a table artifact (one row per metric and run pair)."""
    md = to_markdown(cmp) + (f"\nHTML report with charts: `{report_url}`\n" if report_url else "")
    create_markdown_artifact(
        md,
        key=artifact_key(cmp["comparison_id"], "comparison"),
        description=f"Comparison of {', '.join(r['run_id'] for r in cmp['runs'])}",
    )
    table = [
        {
            "after": r["run_b"],
            "before": r["run_a"],
            "metric": r["metric"],
            "kind": r["kind"],
            "before_value": num(r["before_value"]),
            "after_value": num(r["after_value"]),
            "diff": num(r["diff"], True),
            "ci95": f"[{num(r['ci_low'], True)}, {num(r['ci_high'], True)}]",
            "p_adjusted": pval(r["p_adjusted"]),
            "verdict": r["verdict"] or "",
        }
        for r in flat_rows(cmp)
    ]
    create_table_artifact(
        table,
        key=artifact_key(cmp["comparison_id"], "comparison-table"),
        description=f"Verdicts of comparison {cmp['comparison_id']}",
    )
