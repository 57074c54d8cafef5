"""S13 cross-asset insights: find the relationships of a measure that are real, and only those.

Six assets (tables) keyed by ``entity_id``, ten numeric measures and one group column each. A few
relationships are planted (clusters of correlated measures across two assets, group columns
that shift a cluster); every other pair is independent. A case names a measure, the assets to
search and a false discovery rate q; the agent claims relationships with test, effect size and
p-value. See README.md in this package.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from scenario_pipeline.datasets import oracle
from scenario_pipeline.datasets.catalog import (
    build_spec,
    dataset,
    default_partition_rows,
)
from scenario_pipeline.datasets.hashing import mix64, stream_key
from scenario_pipeline.datasets.spec import DatasetSpec, FeatureSpec, TableSpec, column
from scenario_pipeline.scenarios.base import Agent, Answer, Case, CaseScore, Metric
from scenario_pipeline.scenarios.declared import DeclaredMetrics
from scenario_pipeline.scenarios.metrics import (
    precision_recall_f1,
)
from scenario_pipeline.scenarios.registry import register

from .features import Relationships

ASSETS: dict[str, list[str]] = {
    "crm": [
        "account_age_days",
        "contacts",
        "deal_value",
        "meetings",
        "nps",
        "seats_quoted",
        "emails_sent",
        "calls",
        "opportunities",
        "renewal_score",
    ],
    "billing": [
        "mrr",
        "invoices_paid",
        "days_to_pay",
        "discounts",
        "refunds",
        "credits",
        "overdue_balance",
        "tax_paid",
        "upgrades",
        "payment_failures",
    ],
    "web": [
        "sessions",
        "page_views",
        "bounce_rate",
        "session_minutes",
        "signups",
        "cart_adds",
        "searches",
        "downloads",
        "return_visits",
        "form_fills",
    ],
    "support": [
        "tickets",
        "first_response_min",
        "resolution_hours",
        "csat",
        "escalations",
        "reopen_rate",
        "chats",
        "kb_views",
        "bugs_reported",
        "callbacks",
    ],
    "product": [
        "active_users",
        "api_calls",
        "features_used",
        "storage_gb",
        "errors",
        "logins",
        "integrations",
        "exports",
        "dashboards",
        "alerts",
    ],
    "marketing": [
        "impressions",
        "clicks",
        "ad_spend",
        "email_opens",
        "webinar_visits",
        "trials",
        "leads",
        "content_views",
        "event_visits",
        "referrals",
    ],
}
GROUPS: dict[str, list[str]] = {
    "crm": ["segment", "smb", "mid", "enterprise"],
    "billing": ["plan_tier", "basic", "plus", "premium"],
    "web": ["device", "desktop", "mobile", "tablet"],
    "support": ["priority_tier", "standard", "priority"],
    "product": ["edition", "community", "team", "business", "enterprise"],
    "marketing": ["channel", "search", "social", "email", "referral"],
}
KEY = "entity_id"
Q_LEVELS = (0.05, 0.1, 0.2)
TESTS = {
    "pearson": "two-sided test of Pearson's correlation between two measures; effect size r",
    "anova": "one-way ANOVA of a measure across the levels of a group column; effect size eta squared",
}


def _params(seed: int) -> dict[str, Any]:
    return {"seed": seed, "assets": ASSETS, "groups": GROUPS, "clusters": 4, "members": 4, "group_effects": 3}


@dataset("s13_assets")
def s13_assets(records: int, seed: int, partition_rows: int | None = None) -> DatasetSpec:
    """Six asset tables of ``records`` entities each."""
    if not 200 <= records <= 1_000_000:
        # the reference agent holds the six tables in memory: 1,000,000 entities take ~3 GB
        raise ValueError(f"S13 needs 200 to 1,000,000 entities, got {records:,}")
    params = _params(seed)
    tables = []
    for asset, measures in ASSETS.items():
        cols = [column(KEY, "record_id"), column(GROUPS[asset][0], "s13_group", seed=seed, asset=asset, levels=GROUPS[asset][1:])]
        for m in measures:
            h = mix64(np.array([0], dtype=np.uint64), stream_key(seed, "s13-scale", asset, m))[0]
            mu = round(10 ** (1 + 3 * (int(h) % 1000) / 1000), 2)
            cols.append(
                column(
                    m, "s13_measure", seed=seed, asset=asset, mu=mu, sd=round(mu * (0.1 + 0.4 * (int(h) >> 20) % 1000 / 1000), 3)
                )
            )
        tables.append(TableSpec(name=asset, columns=tuple(cols)))
    return DatasetSpec(
        name="s13_assets",
        seed=seed,
        records=records,
        partition_rows=partition_rows or default_partition_rows(records),
        tables=tuple(tables),
        features=tuple(FeatureSpec(kind="s13_relationships", table=a, params=params) for a in ASSETS),
    )


def candidates(measure: str, scope: list[str]) -> list[str]:
    """Every variable a case's measure is tested against: the scope's measures and group columns."""
    out = []
    for asset in scope:
        out += [f"{asset}.{m}" for m in ASSETS[asset] if f"{asset}.{m}" != measure]
        out.append(f"{asset}.{GROUPS[asset][0]}")
    return out


def case_truth(spec: DatasetSpec, measure: str, scope: list[str]) -> dict[str, Any]:
    rel: Relationships = oracle.of_kind(spec, "s13_relationships")
    allowed = set(candidates(measure, scope))
    related = {k: v for k, v in rel.partners(measure).items() if k in allowed}
    return {
        "relationships": [{"with": k, "test": t, "effect_size": e} for k, (t, e) in sorted(related.items())],
        "candidates": len(allowed),
    }


def case_input(measure: str, scope: list[str], q: float) -> dict[str, Any]:
    return {
        "question": f"Which measures or group columns of {', '.join(scope)} are significantly related to {measure}, "
        f"at a false discovery rate of {q}?",
        "measure": measure,
        "scope": scope,
        "q": q,
        "key": KEY,
        "tables": {a: a for a in ASSETS},
        "group_columns": {a: GROUPS[a][0] for a in ASSETS},
        "tests": TESTS,
    }


@register
class CrossAssetInsights(DeclaredMetrics):
    id: ClassVar[str] = "s13-insights"
    title: ClassVar[str] = "Cross-asset insights"
    purpose: ClassVar[str] = "report the real relationships between assets with the false discovery rate under control"
    default_records: ClassVar[int] = 3000
    default_cases: ClassVar[int] = 120
    max_cases: ClassVar[int] = 1000
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("recall", threshold=0.9, min_effect=0.02),
        Metric("precision", threshold=0.85, min_effect=0.02),
        Metric("f1"),
        # An errored case made no discoveries, which would look like FDP 0: it counts as all false.
        Metric("fdp", higher_is_better=False, on_error=1.0),
        Metric("fdp_excess", higher_is_better=False, threshold=0.0, min_effect=0.01, on_error=1.0),
        # Over the relationships a case found; an errored case counts as an error of 1.0 (20x the bar).
        Metric("effect_size_error", higher_is_better=False, threshold=0.05, min_effect=0.01, on_error=1.0),
        Metric("q", source="diagnostic"),
    )
    empty_answer: ClassVar[dict[str, Any]] = {"relationships": []}

    def dataset_spec(self, records: int, seed: int) -> DatasetSpec:
        return build_spec("s13_assets", records=records, seed=seed)

    def draw_cases(self, spec: DatasetSpec | None, n: int, seed: int) -> list[Case]:
        assert spec is not None
        rel: Relationships = oracle.of_kind(spec, "s13_relationships")
        # Targets: clustered measures; scopes: the other asset of the cluster, its own, or both.
        combos = []
        for c in rel.clusters:
            pair = sorted({m.asset for m in c.members})
            for m in c.members:
                other = [a for a in pair if a != m.asset]
                for scope in (other, [m.asset], pair):
                    for q in Q_LEVELS:
                        combos.append((f"{m.asset}.{m.measure}", scope, q))
        order = np.argsort(mix64(np.arange(len(combos), dtype=np.uint64), stream_key(seed, self.id, "cases")), kind="stable")
        cases = []
        for i in range(n):
            measure, scope, q = combos[int(order[i % len(combos)])]
            truth = case_truth(spec, measure, scope)
            cases.append(
                Case(
                    f"{self.id}-{i:05d}",
                    i,
                    case_input(measure, scope, q),
                    truth,
                    {"q": q, "scope": ",".join(scope), "true": len(truth["relationships"]), "tests": truth["candidates"]},
                )
            )
        return cases

    def reference_agent(self, **params: Any) -> Agent:
        from .agent import InsightFinder  # lazy: its agent loads scipy, 0.5 s, at every load of the registry

        return InsightFinder(**params)

    def score(self, case: Case, answer: Answer, context: dict[str, Any]) -> CaseScore:
        q = float(case.input["q"])
        zeros = {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        items = answer.get("relationships")
        if not isinstance(items, list):
            return CaseScore(False, zeros, "answer.relationships must be a list of {with, test, effect_size, p_value}")
        claimed: dict[str, float] = {}
        for k, item in enumerate(items):
            problem = _item_problem(item)
            if problem:
                return CaseScore(False, zeros, f"answer.relationships[{k}] {problem}")
            claimed.setdefault(item["with"], float(item["effect_size"]))
        truth = {r["with"]: r["effect_size"] for r in case.truth["relationships"]}
        precision, recall, f1 = precision_recall_f1(set(claimed), set(truth))
        hits = set(claimed) & set(truth)
        false = len(claimed) - len(hits)
        fdp = false / len(claimed) if claimed else 0.0
        metrics = {"precision": precision, "recall": recall, "f1": f1, "fdp": fdp, "q": q, "fdp_excess": fdp - q}
        if hits:
            metrics["effect_size_error"] = sum(abs(claimed[k] - truth[k]) for k in hits) / len(hits)
        # A case passes when it finds every real relationship and its false share stays within q.
        passed = recall == 1.0 and fdp <= q
        reason = (
            None if passed else f"found {len(hits)} of {len(truth)} relationships with {false} false ones (FDP {fdp:.3f}, q {q})"
        )
        return CaseScore(passed, metrics, reason)


def _item_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return f"is {type(item).__name__}, not an object"
    if not isinstance(item.get("with"), str):
        return "has no 'with' (asset.column)"
    for key in ("effect_size", "p_value"):
        v = item.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"({item['with']}) has no finite number {key}"
    if not 0.0 <= item["p_value"] <= 1.0:
        return f"({item['with']}) has p_value {item['p_value']} outside [0, 1]"
    return None
