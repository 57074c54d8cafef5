"""Self-contained HTML reports (inline CSS and SVG, nothing fetched) for a run and for a comparison."""

from __future__ import annotations

from html import escape
from typing import Any

from scenario_pipeline.compare import svg
from scenario_pipeline.compare.data import RunData
from scenario_pipeline.compare.engine import operations_summary
from scenario_pipeline.compare.export import num, pval

CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:980px;color:#212121;line-height:1.4}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #e0e0e0;padding-bottom:4px}
h3{font-size:14px;margin-top:18px}.muted{color:#757575}code{background:#f5f5f5;padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #e0e0e0;padding:4px 8px;text-align:left}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.chip{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff;font-size:12px;margin-right:4px}
.improved{background:#2e7d32}.degraded{background:#c62828}.unchanged{background:#616161}.inconclusive{background:#ef6c00}
.pass{color:#2e7d32;font-weight:600}.fail{color:#c62828;font-weight:600}.critical{color:#c62828}.warning{color:#ef6c00}.info{color:#1565c0}
figure{margin:10px 0}
"""


def page(title: str, sections: list[str]) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
        + "\n".join(sections)
        + "</body></html>\n"
    )


def _chip(verdict: str | None) -> str:
    return f'<span class="chip {escape(verdict)}">{escape(verdict)}</span>' if verdict else ""


def _table(head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        out.append(
            "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        )
    return "".join(out) + "</table>"


def _pair_section(p: dict[str, Any]) -> list[str]:
    quality = [r for r in p["rows"] if r["kind"] == "quality"]
    ops = [r for r in p["rows"] if r["kind"] == "operations"]
    out = [
        f"<h2>{escape(p['run_b'])} vs {escape(p['run_a'])}</h2>",
        f'<p class="muted">{p["paired_cases"]} paired cases'
        + (f"; {p['only_in_a']} only in {escape(p['run_a'])}" if p["only_in_a"] else "")
        + (f"; {p['only_in_b']} only in {escape(p['run_b'])}" if p["only_in_b"] else "")
        + ".</p>",
        "<figure>"
        + svg.diff_chart("Difference (after - before) with 95% interval; grey band: +/- minimum effect", quality)
        + "</figure>",
    ]
    out.append(
        _table(
            ["metric", "before", "after", "difference", "95% CI", "test", "p", "p adj.", "min effect", "verdict"],
            [
                [
                    escape(r["metric"]),
                    num(r["before_value"]),
                    num(r["after_value"]),
                    num(r["diff"], True),
                    f"[{num(r['ci_low'], True)}, {num(r['ci_high'], True)}]",
                    f"{escape(r['test'])} (n={r['n']})",
                    pval(r["p_value"]),
                    pval(r["p_adjusted"]),
                    num(r["min_effect"]),
                    _chip(r["verdict"]),
                ]
                for r in quality
            ],
            numeric={1, 2, 3, 6, 7, 8},
        )
    )
    if ops:
        out.append("<h3>Per-case operations (no verdict)</h3>")
        out.append(
            _table(
                ["per case", "before (mean)", "after (mean)", "difference", "95% CI", "test", "p"],
                [
                    [
                        escape(r["metric"]),
                        num(r["before_value"]),
                        num(r["after_value"]),
                        num(r["diff"], True),
                        f"[{num(r['ci_low'], True)}, {num(r['ci_high'], True)}]",
                        f"{escape(r['test'])} (n={r['n']})",
                        pval(r["p_value"]),
                    ]
                    for r in ops
                ],
                numeric={1, 2, 3, 6},
            )
        )
    f = p["failures"]
    out.append(
        f"<h3>What changed</h3><p>{f['regression_count']} case(s) passed before and fail after; {f['fix_count']} failed before and pass after.</p>"
    )
    if f["findings"]:
        out.append("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in f["findings"]) + "</ul>")
    if f["regressions"]:
        out.append(
            _table(
                ["case passed before, fails after", "reason now", "attributes"],
                [
                    [
                        f"<code>{escape(r['case_id'])}</code>",
                        escape(r["reason_after"] or ""),
                        escape(", ".join(f"{k}={v}" for k, v in r["attributes"].items())),
                    ]
                    for r in f["regressions"][:25]
                ],
            )
        )
    return out


def _bars(cmp: dict[str, Any]) -> str:
    groups = []
    metrics = [e["metric"] for e in cmp["table"] if e.get("kind") == "quality"]
    for name in metrics:
        bars = []
        for k, p in enumerate(cmp["pairs"]):
            row = next((r for r in p["rows"] if r["metric"] == name), None)
            if row is None:
                continue
            if k == 0:
                bars.append((p["run_a"], row["before_value"], *row["before_ci"]))
            bars.append((p["run_b"], row["after_value"], *row["after_ci"]))
        groups.append((name, bars))
    return svg.bars_chart("Each run's mean with its 95% interval (bars in run order, colours as in the latency chart)", groups)


def _latency(ops: dict[str, dict[str, Any]]) -> list[str]:
    ids = list(ops)
    out = ["<figure>" + svg.histogram("Latency per case", {i: ops[i]["latency_ms"] for i in ids}) + "</figure>"]
    rows = []
    for key, label in (
        ("latency_p50_ms", "latency p50 (ms)"),
        ("latency_p95_ms", "latency p95 (ms)"),
        ("latency_p99_ms", "latency p99 (ms)"),
        ("cost_per_case_usd", "cost per case (USD)"),
        ("tokens_per_case", "tokens per case"),
        ("cases", "cases"),
    ):
        rows.append([label] + [num(ops[i].get(key)) for i in ids])
    out.append(_table([""] + ids, rows, numeric=set(range(1, len(ids) + 1))))
    return out


def trends(history: list[dict[str, Any]], metrics: list[str], baseline_run_id: str | None) -> list[str]:
    """One line chart per metric over the scenario's runs at this scale, oldest first."""
    if len(history) < 2:
        return ['<p class="muted">Trends appear once the scenario has two or more runs at this scale in the warehouse.</p>']
    labels = [h["run_id"] for h in history]
    mark = labels.index(baseline_run_id) if baseline_run_id in labels else None
    charts = []
    for m in metrics:
        series = [h["metrics"].get(m) for h in history]
        if any(v is not None for v in series):
            charts.append(
                "<figure>"
                + svg.line_chart(f"{m} over the last {len(history)} runs", labels, {m: series}, highlight=mark)
                + "</figure>"
            )
    return charts


def comparison_html(cmp: dict[str, Any], history: list[dict[str, Any]] | None = None, baseline_run_id: str | None = None) -> str:
    s = cmp["summary"]
    head = [
        f"<h1>Comparison of {escape(cmp['scenario'])} runs</h1>",
        f'<p class="muted">{cmp["records"]:,} records, seed {cmp["seed"]}; reference <code>{escape(cmp["reference"])}</code>; '
        f"95% paired-bootstrap intervals ({cmp['n_boot']:,} resamples), {escape(cmp['correction'].upper())}-adjusted p-values, alpha {cmp['alpha']}. "
        "A verdict needs significance and at least the scenario's minimum effect.</p>",
        "<p>"
        + " ".join(
            f"{_chip(v)} {escape(', '.join(s[v]) or 'none')}" for v in ("improved", "degraded", "unchanged", "inconclusive")
        )
        + "</p>",
        _table(
            ["run", "agent", "status", "cases", "code", "finished"],
            [
                [
                    f"<code>{escape(r['run_id'])}</code>",
                    escape(str(r["agent"])),
                    escape(str(r["status"])),
                    str(r["cases"]),
                    escape(str(r["code_version"] or "")),
                    escape(str(r["finished_at"] or "")),
                ]
                for r in cmp["runs"]
            ],
        ),
    ]
    body = head + ["<h2>Before and after</h2><figure>" + _bars(cmp) + "</figure>"]
    for p in cmp["pairs"]:
        body += _pair_section(p)
    body += ["<h2>Latency and cost</h2>"] + _latency(cmp["operations"])
    if history is not None:
        body += ["<h2>Trends</h2>"] + trends(
            history, [e["metric"] for e in cmp["table"] if e.get("kind") == "quality"], baseline_run_id
        )
    body += ["<h2>Where each run fails</h2>"] + _failures(cmp["failures"])
    return page(f"Comparison {cmp['comparison_id']}", body)


def _failures(failures: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for run_id, f in failures.items():
        out.append(f"<h3>{escape(run_id)}: {f['failed']} of {f['cases']} cases failed</h3>")
        if f["findings"]:
            out.append("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in f["findings"]) + "</ul>")
        if f["by_reason"]:
            out.append(
                _table(
                    ["failure reason", "cases", "e.g."],
                    [[escape(r["reason"]), str(r["cases"]), escape(", ".join(r["examples"][:3]))] for r in f["by_reason"][:15]],
                    numeric={1},
                )
            )
    return out


def run_html(
    data: RunData,
    failures: dict[str, Any],
    history: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    baseline: dict[str, Any] | None,
    baseline_run_id: str | None,
    note: str | None = None,
) -> str:
    """A run's report: its metrics against thresholds, alerts, trends, latency, failures, and the baseline comparison."""
    run = data.run
    passed = run.get("passed")
    body = [
        f"<h1>{escape(run['scenario'])} run {escape(run['run_id'])}: "
        f"<span class='{'pass' if passed else 'fail'}'>{'PASSED' if passed else 'FAILED'}</span></h1>",
        f'<p class="muted">agent <code>{escape(str(run["agent"]))}</code>, {run["records"]:,} records, seed {run["seed"]}, '
        f"{len(data.cases)} cases, status {escape(str(run['status']))}, code {escape(str(run.get('code_version') or ''))}.</p>",
    ]
    if note:
        body.append(f"<p class='warning'>{escape(note)}</p>")
    rows = []
    for m in sorted(data.metrics.values(), key=lambda m: m["metric"]):
        ok = m.get("passed")
        rows.append(
            [
                escape(m["metric"]),
                num(m.get("value")),
                "" if m.get("target") is None else ("&ge; " if m.get("higher_is_better") else "&le; ") + num(m["target"]),
                {True: "<span class='pass'>yes</span>", False: "<span class='fail'>NO</span>", None: ""}[ok],
            ]
        )
    body += ["<h2>Metrics</h2>", _table(["metric", "value", "threshold", "met"], rows, numeric={1})]
    if alerts:
        body += [
            "<h2>Alerts</h2>",
            "<ul>"
            + "".join(
                f"<li class='{escape(a['severity'])}'><b>{escape(a['severity'])}</b> "
                f"({escape(a['kind'])}): {escape(a['message'])}</li>"
                for a in alerts
            )
            + "</ul>",
        ]
    if baseline is not None:
        body.append(f"<h2>Against the baseline <code>{escape(baseline['reference'])}</code></h2>")
        for p in baseline["pairs"]:
            body += _pair_section(p)[1:]
    elif baseline_run_id is None:
        body.append(
            "<p class='muted'>No baseline for this scenario and scale yet: <code>scenario baseline promote RUN_ID</code> sets one.</p>"
        )
    ops = {run["run_id"]: operations_summary(data)}
    if baseline is not None:
        ops = baseline["operations"]
    body += ["<h2>Latency and cost</h2>"] + _latency(ops)
    body += ["<h2>Trends</h2>"] + trends(history, sorted(data.metrics), baseline_run_id)
    body += ["<h2>Where it fails</h2>"] + _failures({run["run_id"]: failures})
    return page(f"Run {run['run_id']}", body)
