"""Where an agent fails: failed cases grouped by failure reason and by case attributes.

Scenarios attach attributes to each case (``Case.attributes``: for S12 the number of needles and
where they sit, e.g. ``last_partition_share = last-1%``). Grouping the cases by each attribute and
comparing each group with the rest turns a pass rate into a sentence a reader can act on:
"recall drops to 0.40 on cases with last_partition_share = last-1% (5 cases; 1.00 on the other 15)".
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from scenario_pipeline.compare.verdict import higher_is_better

if TYPE_CHECKING:
    from scenario_pipeline.compare.data import RunData

MAX_VALUES = 8  # an attribute with more distinct numeric values is cut into quartiles
MIN_GAP = 0.05  # a group must differ from the rest by this much (on 0..1 metrics) to make a finding
MAX_FINDINGS = 8
MAX_LISTED = 50  # cases listed by name (regressions, fixes, examples)


def reason_family(reason: str | None) -> str:
    """Reasons that differ only in numbers or quoted values fall in one group."""
    if not reason:
        return "failed (no reason given)"
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    text = re.sub(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?", "N", text)
    return text[:160]


def _labels(cases: list[dict[str, Any]], key: str) -> list[str]:
    values = [c["attributes"].get(key) for c in cases]
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(nums) == len([v for v in values if v is not None]) and len(set(nums)) > MAX_VALUES:
        edges = np.quantile(np.array(nums, dtype=float), [0.25, 0.5, 0.75])
        lows = [min(nums)] + list(edges)
        highs = list(edges) + [max(nums)]

        def bucket(v: Any) -> str:
            if v is None:
                return "missing"
            i = int(np.searchsorted(edges, v, side="left"))
            return f"{lows[i]:.4g}..{highs[i]:.4g}"

        return [bucket(v) for v in values]
    return ["missing" if v is None else str(v) for v in values]


def _rate_metrics(cases: list[dict[str, Any]], scenario_id: str) -> dict[str, bool]:
    """pass_rate plus the declared per-case metrics whose values lie in [0, 1] (gaps in them read
    as shares), each with its declared direction (True: higher is better)."""
    names = sorted({k for c in cases for k in c["metrics"]})
    keep = {"pass_rate": True}
    for n in names:
        up = higher_is_better(scenario_id, n)
        vals = [c["metrics"].get(n) for c in cases]
        vals = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if up is not None and vals and min(vals) >= 0.0 and max(vals) <= 1.0:
            keep[n] = up
    return keep


def _value(case: dict[str, Any], metric: str) -> float | None:
    if metric == "pass_rate":
        return 1.0 if case["passed"] else 0.0
    v = case["metrics"].get(metric)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _mean(cases: list[dict[str, Any]], metric: str) -> float | None:
    vals = [v for c in cases if (v := _value(c, metric)) is not None]
    return sum(vals) / len(vals) if vals else None


def _groups(cases: list[dict[str, Any]]) -> dict[str, dict[str, list[int]]]:
    """attribute -> label -> indexes of the cases carrying it."""
    keys = sorted({k for c in cases for k in c["attributes"]})
    out: dict[str, dict[str, list[int]]] = {}
    for key in keys:
        by: dict[str, list[int]] = defaultdict(list)
        for i, label in enumerate(_labels(cases, key)):
            by[label].append(i)
        if len(by) > 1:  # an attribute with one value for every case explains nothing
            out[key] = dict(sorted(by.items()))
    return out


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def analyze_run(r: RunData) -> dict[str, Any]:
    cases = r.cases
    failed = [c for c in cases if not c["passed"]]
    reasons: dict[str, list[str]] = defaultdict(list)
    for c in failed:
        reasons[reason_family(c.get("reason"))].append(c["case_id"])
    metrics = _rate_metrics(cases, r.run["scenario"])
    by_attribute, findings = [], []
    for key, groups in _groups(cases).items():
        for label, idx in groups.items():
            members, inside = [cases[i] for i in idx], set(idx)
            rest = [c for i, c in enumerate(cases) if i not in inside]
            by_attribute.append(
                {
                    "attribute": key,
                    "value": label,
                    "cases": len(members),
                    "failed": sum(not c["passed"] for c in members),
                    "means": {m: _mean(members, m) for m in metrics},
                }
            )
            for m in metrics:
                g, o = _mean(members, m), _mean(rest, m)
                if g is None or o is None:
                    continue
                bad = (o - g) if metrics[m] else (g - o)
                if bad >= MIN_GAP:
                    verb = "drops to" if metrics[m] else "rises to"
                    findings.append(
                        (
                            bad * len(members),
                            f"{m} {verb} {_fmt(g)} on cases with {key} = {label} "
                            f"({len(members)} cases; {_fmt(o)} on the other {len(rest)})",
                        )
                    )
    findings.sort(key=lambda f: -f[0])
    return {
        "run_id": r.run_id,
        "cases": len(cases),
        "failed": len(failed),
        "by_reason": [
            {"reason": k, "cases": len(v), "examples": v[:5]}
            for k, v in sorted(reasons.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ],
        "by_attribute": by_attribute,
        "findings": [f for _, f in findings[:MAX_FINDINGS]],
    }


def analyze_pair(a: RunData, b: RunData) -> dict[str, Any]:
    """What changed between two runs of the same cases: regressions, fixes, and the groups that moved."""
    cb = b.by_case()
    pairs = [(c, cb[c["case_id"]]) for c in a.cases if c["case_id"] in cb]
    regressions = [
        {"case_id": x["case_id"], "reason_after": y.get("reason"), "attributes": x["attributes"]}
        for x, y in pairs
        if x["passed"] and not y["passed"]
    ]
    fixes = [
        {"case_id": x["case_id"], "reason_before": x.get("reason"), "attributes": x["attributes"]}
        for x, y in pairs
        if not x["passed"] and y["passed"]
    ]
    before = [x for x, _ in pairs]
    after = [y for _, y in pairs]
    metrics = _rate_metrics(before + after, a.run["scenario"])
    moved, findings = [], []
    for key, groups in _groups(before).items():
        for label, idx in groups.items():
            g_before, g_after = [before[i] for i in idx], [after[i] for i in idx]
            inside = set(idx)
            others = [i for i in range(len(before)) if i not in inside]
            o_before, o_after = [before[i] for i in others], [after[i] for i in others]
            by_metric: dict[str, dict[str, float | None]] = {}
            entry = {"attribute": key, "value": label, "cases": len(idx), "metrics": by_metric}
            for m in metrics:
                gb, ga, ob, oa = _mean(g_before, m), _mean(g_after, m), _mean(o_before, m), _mean(o_after, m)
                by_metric[m] = {"before": gb, "after": ga}
                if gb is None or ga is None:
                    continue
                change = (gb - ga) if metrics[m] else (ga - gb)  # > 0: worse
                rest_change = 0.0 if ob is None or oa is None else ((ob - oa) if metrics[m] else (oa - ob))
                if change >= MIN_GAP and change - rest_change >= MIN_GAP:  # worse here, and worse than elsewhere
                    verb = "fell" if metrics[m] else "rose"
                    findings.append(
                        (
                            change * len(idx),
                            f"{m} {verb} from {_fmt(gb)} to {_fmt(ga)} on cases with {key} = {label} "
                            f"({len(idx)} cases); elsewhere {_fmt(ob)} -> {_fmt(oa)}",
                        )
                    )
            moved.append(entry)
    findings.sort(key=lambda f: -f[0])
    reasons = Counter(reason_family(r["reason_after"]) for r in regressions)
    return {
        "run_a": a.run_id,
        "run_b": b.run_id,
        "regressions": regressions[:MAX_LISTED],
        "regression_count": len(regressions),
        "fixes": fixes[:MAX_LISTED],
        "fix_count": len(fixes),
        "regression_reasons": [{"reason": k, "cases": v} for k, v in reasons.most_common()],
        "by_attribute": moved,
        "findings": [f for _, f in findings[:MAX_FINDINGS]],
    }
