"""Failure analysis, exports and the HTML report of a comparison, on hand-built runs."""

from __future__ import annotations

import csv
import io
import json
import re
from html import unescape

import pytest

from scenario_pipeline.compare.data import load_run
from scenario_pipeline.compare.engine import compare_runs
from scenario_pipeline.compare.export import render, to_csv, to_json, to_markdown
from scenario_pipeline.compare.failures import reason_family
from scenario_pipeline.compare.html_report import comparison_html
from scenario_pipeline.errors import UsageError
from scenario_pipeline.warehouse.base import connect
from tests.warehouse_support import S12_THRESHOLDS, publish


@pytest.fixture
def pair(tmp_path):  # noqa: ANN001, ANN201
    """20 cases; 5 have their needles in the last 1% of partitions. Before, all pass. After, the 5 last-1% cases
    find 1 of 2 needles (recall 0.5), the others still pass."""
    wh = connect(f"duckdb:///{tmp_path}/wh.duckdb")
    where = ["last-1%" if i >= 15 else "body" for i in range(20)]
    before = [
        {
            "passed": True,
            "metrics": {"recall": 1.0, "precision": 1.0},
            "attributes": {"last_partition_share": w, "needles": 2},
            "latency_ms": 10.0 + i,
            "cost_usd": 0.01,
        }
        for i, w in enumerate(where)
    ]
    after = [
        {
            "passed": w == "body",
            "metrics": {"recall": 1.0 if w == "body" else 0.5, "precision": 1.0},
            "attributes": {"last_partition_share": w, "needles": 2},
            "latency_ms": 20.0 + i,
            "cost_usd": 0.02,
            "reason": None if w == "body" else f"found 1 of 2 needles with 0 false hits (case {i})",
        }
        for i, w in enumerate(where)
    ]
    publish(wh, "before", before, thresholds=S12_THRESHOLDS)
    publish(wh, "after", after, thresholds=S12_THRESHOLDS, minute=5)
    cmp = compare_runs([load_run(wh, "before"), load_run(wh, "after")])
    history = wh.history("s12-search", 1000)
    wh.close()
    return cmp, history


def test_failure_analysis_says_where_the_agent_fails(pair) -> None:  # noqa: ANN001
    cmp, _ = pair
    f = cmp["pairs"][0]["failures"]
    # The 5 last-1% cases passed before and fail after; none got fixed.
    assert f["regression_count"] == 5 and f["fix_count"] == 0
    assert [r["case_id"] for r in f["regressions"]] == [f"case-{i:04d}" for i in range(15, 20)]
    # Their reasons differ only in numbers: one family.
    assert f["regression_reasons"] == [{"reason": "found N of N needles with N false hits (case N)", "cases": 5}]
    # recall on last-1%: 1.00 -> 0.50; elsewhere 1.00 -> 1.00. 'needles' is 2 everywhere: it explains nothing and is not listed.
    assert (
        "recall fell from 1.00 to 0.50 on cases with last_partition_share = last-1% (5 cases); elsewhere 1.00 -> 1.00"
        in f["findings"]
    )
    assert all("needles" not in s for s in f["findings"])
    run_f = cmp["failures"]["after"]
    assert run_f["failed"] == 5 and run_f["by_reason"][0]["cases"] == 5
    # After: recall 0.5 on the 5 last-1% cases vs 1.0 on the other 15.
    assert (
        "recall drops to 0.50 on cases with last_partition_share = last-1% (5 cases; 1.00 on the other 15)" in run_f["findings"]
    )
    # pass rate 0.75 -> recall verdict: 15 unchanged + 5 at -0.5: mean diff -0.125
    rec = next(r for r in cmp["pairs"][0]["rows"] if r["metric"] == "recall")
    assert rec["diff"] == pytest.approx(-0.125)


def test_reason_families() -> None:
    assert reason_family("timeout after 60.0 s") == "timeout after N s"
    assert reason_family("agent raised: KeyError('tag')") == "agent raised: KeyError('…')"
    assert reason_family(None) == "failed (no reason given)"


def test_exports_carry_the_same_numbers(pair, tmp_path) -> None:  # noqa: ANN001
    cmp, _ = pair
    data = json.loads(to_json(cmp))
    assert data["comparison_id"] == cmp["comparison_id"] and "latency_ms" not in data["operations"]["after"]
    # latency p50 of 10..29 ms: before 10..29 -> median (19 + 20)/2 = 19.5; after 20..39 -> 29.5
    assert data["operations"]["before"]["latency_p50_ms"] == pytest.approx(19.5)
    assert data["operations"]["after"]["latency_p50_ms"] == pytest.approx(29.5)
    assert data["operations"]["after"]["cost_per_case_usd"] == pytest.approx(0.02)
    rows = list(csv.DictReader(io.StringIO(to_csv(cmp))))
    recall = next(r for r in rows if r["metric"] == "recall")
    assert float(recall["diff"]) == pytest.approx(-0.125) and recall["verdict"] in ("degraded", "inconclusive")
    latency = next(r for r in rows if r["metric"] == "latency_ms")
    # every case is exactly 10 ms slower: difference +10, interval [10, 10], no verdict (no latency threshold declared)
    assert (float(latency["diff"]), float(latency["ci_low"]), float(latency["ci_high"]), latency["verdict"]) == (
        10.0,
        10.0,
        10.0,
        "",
    )
    md = to_markdown(cmp)
    assert "| recall | 1 | 0.875 | -0.125 [" in md and "## Failure analysis" in md
    assert render(cmp, "md") == md
    with pytest.raises(UsageError, match="not known"):
        render(cmp, "xlsx")


def test_html_report_is_self_contained_with_charts(pair) -> None:  # noqa: ANN001
    cmp, history = pair
    html = comparison_html(cmp, history, "before")
    assert html.startswith("<!doctype html>")
    # three kinds of charts: before/after bars with error bars, differences with intervals, latency distribution, and trends
    titles = [unescape(t) for t in re.findall(r"<svg[^>]*aria-label=\"([^\"]+)\"", html)]
    assert any(t.startswith("Each run's mean") for t in titles)
    assert any(t.startswith("Difference (after - before)") for t in titles)
    assert "Latency per case" in titles and any(t.startswith("recall over the last 2 runs") for t in titles)
    # nothing is fetched: no scripts, no stylesheets, no URLs but the SVG namespace
    assert "<script" not in html and "<link" not in html
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}


def test_html_escapes_hostile_names(tmp_path) -> None:  # noqa: ANN001
    wh = connect(f"duckdb:///{tmp_path}/wh.duckdb")
    evil = "<script>alert('x')</script>"
    publish(wh, evil, [{"passed": True, "metrics": {"recall": 1.0}}] * 3, scenario="s<b>")
    publish(wh, "ok", [{"passed": True, "metrics": {"recall": 1.0}}] * 3, scenario="s<b>", minute=1)
    cmp = compare_runs([load_run(wh, evil), load_run(wh, "ok")])
    wh.close()
    html = comparison_html(cmp, [], None)
    assert "<script>" not in html and "&lt;script&gt;" in html
