"""Compare runs that ran the same cases: per metric, before/after, a paired bootstrap interval of
the difference, a paired test, a multiplicity-adjusted p-value and a verdict.

The first run is the reference ("before"); every other run is compared with it ("after"), so a
comparison of several agents or models on the same cases is one table. Quality metrics (pass
rate and every per-case metric the scorer records) get verdicts; operations (latency, cost,
tokens) are shown side by side with their own intervals and tests but no verdict unless the
scenario declares a threshold for them.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any

import numpy as np

from scenario_pipeline.compare.data import RunData, check_comparable
from scenario_pipeline.compare.failures import analyze_pair, analyze_run
from scenario_pipeline.compare.stats import CORRECTIONS, mcnemar_exact, paired_bootstrap, wilcoxon_signed_rank
from scenario_pipeline.compare.verdict import MetricSpec, metric_spec, verdict
from scenario_pipeline.errors import UsageError
from scenario_pipeline.scenarios.metrics import percentile
from scenario_pipeline.warehouse.sql_warehouse import utcnow

OPERATIONS = ("latency_ms", "cost_usd", "input_tokens", "output_tokens")
PASS = "pass_rate"


def comparison_id(run_ids: list[str]) -> str:
    """The same runs in the same order always get the same id, so comparing again replaces, not adds."""
    return hashlib.sha256("\x00".join(run_ids).encode()).hexdigest()[:24]


def _seed(run_ids: list[str]) -> int:
    return int(hashlib.sha256(("bootstrap\x00" + "\x00".join(run_ids)).encode()).hexdigest()[:8], 16)


def _nan(v: Any) -> float:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return math.nan
    return float(v)


def _mean(a: np.ndarray) -> float:
    a = a[~np.isnan(a)]
    return float(a.mean()) if len(a) else math.nan


def _none(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _columns(a: RunData, b: RunData, ids: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """Per metric: before values, after values (NaN where a case lacks it), kind."""
    ca, cb = a.by_case(), b.by_case()
    out: dict[str, tuple[np.ndarray, np.ndarray, str]] = {
        PASS: (
            np.array([1.0 if ca[i]["passed"] else 0.0 for i in ids]),
            np.array([1.0 if cb[i]["passed"] else 0.0 for i in ids]),
            "quality",
        ),
    }
    names = sorted({k for c in a.cases for k in c["metrics"]} | {k for c in b.cases for k in c["metrics"]})
    for name in names:
        if name == PASS:
            continue
        out[name] = (
            np.array([_nan(ca[i]["metrics"].get(name)) for i in ids]),
            np.array([_nan(cb[i]["metrics"].get(name)) for i in ids]),
            "quality",
        )
    for name in OPERATIONS:
        before = np.array([_nan(ca[i].get(name)) for i in ids])
        after = np.array([_nan(cb[i].get(name)) for i in ids])
        if not (np.isnan(before).all() and np.isnan(after).all()):
            out[name] = (before, after, "operations")
    return out


def _compare_pair(a: RunData, b: RunData, specs: dict[str, MetricSpec], n_boot: int) -> dict[str, Any]:
    ids_b = set(b.by_case())
    ids = [c["case_id"] for c in a.cases if c["case_id"] in ids_b]
    cols = _columns(a, b, ids)
    boot_cols: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    for name, (before, after, _kind) in cols.items():
        valid = ~np.isnan(before) & ~np.isnan(after)
        diff = np.where(valid, after - before, np.nan)
        boot_cols += [diff, np.where(valid, before, np.nan), np.where(valid, after, np.nan)]
        test = mcnemar_exact(before[valid] > 0.5, after[valid] > 0.5) if name == PASS else wilcoxon_signed_rank(diff[valid])
        spec = specs.get(name) or MetricSpec(name, True, 0.0, False, quality=False)
        rows.append(
            {
                "metric": name,
                "kind": "quality" if spec.quality else "operations",
                "test": test.test,
                "n": int(valid.sum()),
                "test_n": test.n,
                "before_value": _mean(np.where(valid, before, np.nan)),
                "after_value": _mean(np.where(valid, after, np.nan)),
                "diff": _mean(diff),
                "p_value": test.p_value,
                "min_effect": spec.min_effect,
                "higher_is_better": spec.higher_is_better,
                "declared": spec.declared,
            }
        )
    intervals = (
        paired_bootstrap(boot_cols, n_boot=n_boot, seed=_seed([a.run_id, b.run_id]))
        if ids
        else [(math.nan, math.nan)] * len(boot_cols)
    )
    for i, row in enumerate(rows):
        row["ci_low"], row["ci_high"] = intervals[3 * i]
        row["before_ci"], row["after_ci"] = intervals[3 * i + 1], intervals[3 * i + 2]
    return {
        "run_a": a.run_id,
        "run_b": b.run_id,
        "paired_cases": len(ids),
        "only_in_a": len(a.cases) - len(ids),
        "only_in_b": len(b.cases) - len(ids),
        "rows": rows,
        "failures": analyze_pair(a, b),
    }


def operations_summary(r: RunData) -> dict[str, Any]:
    lat = [c["latency_ms"] for c in r.cases if c.get("latency_ms") is not None]
    costs = [c["cost_usd"] for c in r.cases if c.get("cost_usd") is not None]
    tokens = [
        (c.get("input_tokens") or 0) + (c.get("output_tokens") or 0)
        for c in r.cases
        if c.get("input_tokens") is not None or c.get("output_tokens") is not None
    ]
    n = len(r.cases)
    return {
        "cases": n,
        "latency_p50_ms": _none(percentile(lat, 50)),
        "latency_p95_ms": _none(percentile(lat, 95)),
        "latency_p99_ms": _none(percentile(lat, 99)),
        "latency_ms": lat,
        "cost_usd": float(sum(costs)) if costs else None,
        "cost_per_case_usd": float(sum(costs)) / n if costs and n else None,
        "tokens_per_case": float(sum(tokens)) / n if tokens and n else None,
    }


def compare_runs(runs: list[RunData], correction: str = "holm", alpha: float = 0.05, n_boot: int = 10_000) -> dict[str, Any]:
    """Compare every run with the first; one table. Raises UsageError when the runs did not run the same cases."""
    if correction not in CORRECTIONS:
        raise UsageError(f"correction {correction!r} is not known; use one of {sorted(CORRECTIONS)}")
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must lie between 0 and 1, got {alpha}")
    check_comparable(runs)
    ref = runs[0]
    scenario = ref.run["scenario"]
    names = {PASS} | {k for r in runs for c in r.cases for k in c["metrics"]} | set(OPERATIONS)
    specs = {n: metric_spec(n, scenario) for n in names}
    pairs = [_compare_pair(ref, other, specs, n_boot) for other in runs[1:]]
    # One family for the multiplicity correction: every quality metric of every pair.
    family = [row for p in pairs for row in p["rows"] if row["kind"] == "quality"]
    for row, adj in zip(family, CORRECTIONS[correction]([row["p_value"] for row in family]), strict=True):
        row["p_adjusted"] = adj
    for p in pairs:
        for row in p["rows"]:
            if row["kind"] == "quality":
                row["verdict"] = verdict(
                    row["n"], row["diff"], (row["ci_low"], row["ci_high"]), row["p_adjusted"], specs[row["metric"]], alpha
                )
            else:
                row["p_adjusted"], row["verdict"] = None, None
    ids = [r.run_id for r in runs]
    summary: dict[str, list[str]] = {"improved": [], "degraded": [], "unchanged": [], "inconclusive": []}
    for p in pairs:
        for row in p["rows"]:
            if row["verdict"]:
                summary[row["verdict"]].append(row["metric"] if len(pairs) == 1 else f"{p['run_b']}:{row['metric']}")
    return {
        "comparison_id": comparison_id(ids),
        "created_at": utcnow().isoformat(timespec="seconds"),
        "scenario": scenario,
        "records": ref.run["records"],
        "seed": ref.run["seed"],
        "runs": [
            {k: r.run.get(k) for k in ("run_id", "agent", "status", "passed", "started_at", "finished_at", "code_version")}
            | {"cases": len(r.cases)}
            for r in runs
        ],
        "reference": ref.run_id,
        "alpha": alpha,
        "correction": correction,
        "n_boot": n_boot,
        "pairs": pairs,
        "summary": summary,
        "operations": {r.run_id: operations_summary(r) for r in runs},
        "failures": {r.run_id: analyze_run(r) for r in runs},
        "table": multi_run_table(runs, pairs),
    }


def multi_run_table(runs: list[RunData], pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per metric: the reference's value, then each run's value, difference, interval and verdict."""
    metrics: list[str] = []
    for p in pairs:
        for row in p["rows"]:
            if row["metric"] not in metrics:
                metrics.append(row["metric"])
    table = []
    for name in metrics:
        entry: dict[str, Any] = {"metric": name, "reference": runs[0].run_id, "cells": []}
        for p in pairs:
            row = next((r for r in p["rows"] if r["metric"] == name), None)
            if row is None:
                continue
            entry.setdefault("reference_value", row["before_value"])
            entry["kind"] = row["kind"]
            entry["cells"].append(
                {k: row[k] for k in ("after_value", "diff", "ci_low", "ci_high", "p_adjusted", "verdict")}
                | {"run_id": p["run_b"]}
            )
        table.append(entry)
    return table


def warehouse_rows(cmp: dict[str, Any]) -> list[dict[str, Any]]:
    """The comparison as rows of the comparisons table."""
    created = datetime.fromisoformat(cmp["created_at"])
    out = []
    for p in cmp["pairs"]:
        for r in p["rows"]:
            out.append(
                {
                    "created_at": created,
                    "scenario": cmp["scenario"],
                    "records": cmp["records"],
                    "seed": cmp["seed"],
                    "run_a": p["run_a"],
                    "run_b": p["run_b"],
                    **{
                        k: _none(r[k]) if isinstance(r[k], float) else r[k]
                        for k in (
                            "metric",
                            "kind",
                            "test",
                            "n",
                            "before_value",
                            "after_value",
                            "diff",
                            "ci_low",
                            "ci_high",
                            "p_value",
                            "p_adjusted",
                            "min_effect",
                            "higher_is_better",
                            "verdict",
                        )
                    },
                }
            )
    return out
