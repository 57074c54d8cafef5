"""A comparison as JSON, CSV or Markdown (the same numbers in each)."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from scenario_pipeline.errors import UsageError

FORMATS = ("md", "csv", "json")
CSV_COLUMNS = [
    "run_a",
    "run_b",
    "metric",
    "kind",
    "n",
    "before_value",
    "after_value",
    "diff",
    "ci_low",
    "ci_high",
    "test",
    "p_value",
    "p_adjusted",
    "min_effect",
    "higher_is_better",
    "verdict",
]


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def public(cmp: dict[str, Any]) -> dict[str, Any]:
    """The comparison without the raw per-case latency lists the charts use."""
    out = dict(cmp)
    out["operations"] = {k: {kk: vv for kk, vv in v.items() if kk != "latency_ms"} for k, v in cmp["operations"].items()}
    return _clean(out)


def to_json(cmp: dict[str, Any]) -> str:
    return json.dumps(public(cmp), indent=2, default=str, allow_nan=False)


def flat_rows(cmp: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"run_a": p["run_a"], "run_b": p["run_b"], **{k: r.get(k) for k in CSV_COLUMNS[2:]}}
        for p in cmp["pairs"]
        for r in p["rows"]
    ]


def to_csv(cmp: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in flat_rows(cmp):
        w.writerow(_clean(row))
    return buf.getvalue()


def num(v: Any, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:+,}" if signed else f"{v:,}"
    return f"{v:+.4g}" if signed else f"{v:.4g}"


def pval(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.2e}" if v < 1e-3 else f"{v:.3f}"


def md_escape(text: Any) -> str:
    """Text inside a Markdown table cell: pipes and newlines would break the table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def ci(r: dict[str, Any]) -> str:
    return f"{num(r['diff'], True)} [{num(r['ci_low'], True)}, {num(r['ci_high'], True)}]"


def pair_table(p: dict[str, Any], kind: str) -> list[str]:
    rows = [r for r in p["rows"] if r["kind"] == kind]
    if not rows:
        return []
    if kind == "quality":
        lines = [
            "| metric | before | after | difference [95% CI] | test | p | p adj. | min effect | verdict |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {md_escape(r['metric'])} | {num(r['before_value'])} | {num(r['after_value'])} | {ci(r)} | {r['test']} (n={r['n']}) "
            f"| {pval(r['p_value'])} | {pval(r['p_adjusted'])} | {num(r['min_effect'])} | **{r['verdict']}** |"
            for r in rows
        ]
    else:
        lines = ["| per case | before (mean) | after (mean) | difference [95% CI] | test | p |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {md_escape(r['metric'])} | {num(r['before_value'])} | {num(r['after_value'])} | {ci(r)} | {r['test']} (n={r['n']}) "
            f"| {pval(r['p_value'])} |"
            for r in rows
        ]
    return lines


def operations_table(cmp: dict[str, Any]) -> list[str]:
    ids = [r["run_id"] for r in cmp["runs"]]
    ops = cmp["operations"]
    lines = ["| | " + " | ".join(f"`{md_escape(i)}`" for i in ids) + " |", "|---|" + "---|" * len(ids)]
    for key, label in (
        ("latency_p50_ms", "latency p50 (ms)"),
        ("latency_p95_ms", "latency p95 (ms)"),
        ("latency_p99_ms", "latency p99 (ms)"),
        ("cost_per_case_usd", "cost per case (USD)"),
        ("tokens_per_case", "tokens per case"),
        ("cases", "cases"),
    ):
        lines.append(f"| {label} | " + " | ".join(num(ops[i].get(key)) for i in ids) + " |")
    return lines


def multi_table(cmp: dict[str, Any]) -> list[str]:
    ids = [r["run_id"] for r in cmp["runs"]]
    lines = [
        "| metric | " + " | ".join(f"`{md_escape(i)}`" + (" (reference)" if n == 0 else "") for n, i in enumerate(ids)) + " |",
        "|---|" + "---|" * len(ids),
    ]
    for entry in cmp["table"]:
        cells = {c["run_id"]: c for c in entry["cells"]}
        out = [num(entry.get("reference_value"))]
        for i in ids[1:]:
            c = cells.get(i)
            if c is None:
                out.append("")
                continue
            v = f"{num(c['after_value'])} ({num(c['diff'], True)} [{num(c['ci_low'], True)}, {num(c['ci_high'], True)}]"
            out.append(v + (f", **{c['verdict']}**)" if c["verdict"] else ")"))
        lines.append(f"| {md_escape(entry['metric'])} | " + " | ".join(out) + " |")
    return lines


def failure_lines(cmp: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for p in cmp["pairs"]:
        f = p["failures"]
        lines += ["", f"### What changed: `{md_escape(p['run_b'])}` vs `{md_escape(p['run_a'])}`", ""]
        lines += [f"- {md_escape(s)}" for s in f["findings"]] or ["- no group of cases moved more than the rest"]
        lines.append(
            f"- {f['regression_count']} case(s) passed before and fail after; {f['fix_count']} failed before and pass after"
        )
        for r in f["regressions"][:10]:
            lines.append(f"  - `{md_escape(r['case_id'])}`: {md_escape(r['reason_after'] or 'failed')}")
    for run_id, f in cmp["failures"].items():
        if not f["failed"]:
            continue
        lines += ["", f"### Where `{md_escape(run_id)}` fails ({f['failed']} of {f['cases']} cases)", ""]
        lines += [f"- {md_escape(s)}" for s in f["findings"]]
        lines += ["", "| failure reason | cases | e.g. |", "|---|---|---|"]
        lines += [
            f"| {md_escape(r['reason'])} | {r['cases']} | {md_escape(', '.join(r['examples'][:3]))} |"
            for r in f["by_reason"][:10]
        ]
    return lines


def to_markdown(cmp: dict[str, Any]) -> str:
    s = cmp["summary"]
    lines = [
        f"# Comparison of {md_escape(cmp['scenario'])} runs ({cmp['records']:,} records, seed {cmp['seed']})",
        "",
        f"Reference (before): `{md_escape(cmp['reference'])}`. Differences are after minus before, with 95% paired-bootstrap intervals "
        f"over cases ({cmp['n_boot']:,} resamples); p-values are {cmp['correction'].upper()}-adjusted across metrics; alpha {cmp['alpha']}. "
        "A verdict needs significance and at least the scenario's minimum effect.",
        "",
        f"**improved**: {', '.join(s['improved']) or 'none'} · **degraded**: {', '.join(s['degraded']) or 'none'} · "
        f"**unchanged**: {', '.join(s['unchanged']) or 'none'} · **inconclusive**: {', '.join(s['inconclusive']) or 'none'}",
        "",
        "| run | agent | status | cases | code |",
        "|---|---|---|---|---|",
        *[
            f"| `{md_escape(r['run_id'])}` | {md_escape(r['agent'])} | {r['status']} | {r['cases']} | {r['code_version'] or ''} |"
            for r in cmp["runs"]
        ],
    ]
    for p in cmp["pairs"]:
        lines += ["", f"## `{md_escape(p['run_b'])}` vs `{md_escape(p['run_a'])}` ({p['paired_cases']} paired cases)", ""]
        lines += pair_table(p, "quality")
        ops = pair_table(p, "operations")
        if ops:
            lines += [""] + ops
    if len(cmp["pairs"]) > 1:
        lines += ["", "## All runs", ""] + multi_table(cmp)
    lines += ["", "## Latency and cost", ""] + operations_table(cmp)
    lines += ["", "## Failure analysis"] + failure_lines(cmp)
    return "\n".join(lines) + "\n"


def render(cmp: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return to_json(cmp)
    if fmt == "csv":
        return to_csv(cmp)
    if fmt == "md":
        return to_markdown(cmp)
    raise UsageError(f"format {fmt!r} is not known; use one of {', '.join(FORMATS)}")
