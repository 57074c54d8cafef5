"""S02 multi-source conflicts: detect where a CRM, billing and support disagree, and resolve it.

Three source tables describe the same customers. Planted disagreements sit in chosen fields of
chosen customers, cosmetic differences (case, spacing) that are not conflicts sit beside them,
and the rest agree. A case is a batch of customers; the agent reports each (customer, field)
whose sources disagree and the value the documented rule resolves it to. See
README.md in this package.
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
from scenario_pipeline.datasets.spec import (
    DatasetSpec,
    FeatureSpec,
    Rules,
    TableSpec,
    column,
)
from scenario_pipeline.scenarios.base import Agent, Answer, Case, CaseScore, Metric
from scenario_pipeline.scenarios.declared import DeclaredMetrics
from scenario_pipeline.scenarios.metrics import (
    precision_recall_f1,
)
from scenario_pipeline.scenarios.registry import register

from .agent import ConflictResolver
from .features import (
    FIELD_COLUMNS,
    KEY_COLUMN,
    SOURCES,
    TRUST,
    UPDATED_COLUMN,
    Conflicts,
    normalize,
)

BATCH = 40
NORMALIZATION = (
    "compare strings after trimming, collapsing runs of spaces and case folding; "
    "compare amounts rounded to cents; a null is no value, not a disagreement"
)


def _source_table(source: str, seed: int) -> TableSpec:
    cols = [column(KEY_COLUMN, "record_id")]
    for field_name, by_source in FIELD_COLUMNS.items():
        if source in by_source:
            # 2% nulls of its own, plus the nulls planted conflicts put in the top trust tier
            cols.append(
                column(
                    by_source[source], "s02_attr", null_rate=0.02, rules=Rules(max_null_rate=0.05), field=field_name, seed=seed
                )
            )
    cols.append(column(UPDATED_COLUMN, "s02_updated"))
    return TableSpec(name=source, columns=tuple(cols))


@dataset("s02_sources")
def s02_sources(records: int, seed: int, partition_rows: int | None = None) -> DatasetSpec:
    """``records`` customers in each of three sources: crm, billing, support."""
    if not 100 <= records <= 2_000_000:
        # the oracle enumerates every planted conflict in Python: 2,000,000 customers take ~10 s
        raise ValueError(f"S02 needs 100 to 2,000,000 customers, got {records:,}")
    params = {"seed": seed, "conflict_rate": 0.08, "cosmetic_rate": 0.04, "two_field_share": 0.3}
    return DatasetSpec(
        name="s02_sources",
        seed=seed,
        records=records,
        partition_rows=partition_rows or default_partition_rows(records),
        tables=tuple(_source_table(s, seed) for s in SOURCES),
        features=tuple(FeatureSpec(kind="s02_conflicts", table=s, params=params) for s in SOURCES),
    )


def case_truth(spec: DatasetSpec, entity_ids: list[int]) -> list[dict[str, Any]]:
    """The conflicts among ``entity_ids`` and their resolved values, from the oracle."""
    planted: Conflicts = oracle.of_kind(spec, "s02_conflicts")
    out = []
    for eid in sorted(set(entity_ids)):
        for c in planted.by_entity.get(eid, []):
            out.append({"entity_id": eid, "field": c.field, "resolved": c.resolved, "pattern": c.pattern})
    return out


def case_input(entity_ids: list[int]) -> dict[str, Any]:
    return {
        "question": "Which of these customers do the sources disagree about, in which field, and what value does the resolution rule give?",
        "entity_ids": sorted(entity_ids),
        "sources": {s: s for s in SOURCES},
        "key": {s: KEY_COLUMN for s in SOURCES},
        "recency_column": {s: UPDATED_COLUMN for s in SOURCES},
        "fields": {f: dict(cols) for f, cols in FIELD_COLUMNS.items()},
        "rule": {
            "trust": {f: [list(t) for t in tiers] for f, tiers in TRUST.items()},
            "then": "within the first trust tier that has a non-null value, the most recently updated source wins",
            "normalize": NORMALIZATION,
        },
    }


def _ranked(values: np.ndarray, key: int) -> np.ndarray:
    """``values`` in a seeded random order."""
    return values[np.argsort(mix64(values.astype(np.uint64), key), kind="stable")]


@register
class MultiSourceConflicts(DeclaredMetrics):
    id: ClassVar[str] = "s02-conflicts"
    title: ClassVar[str] = "Multi-source conflicts"
    purpose: ClassVar[str] = "find where sources disagree about an entity and resolve it by a stated rule"
    default_records: ClassVar[int] = 20_000
    default_cases: ClassVar[int] = 100
    max_cases: ClassVar[int] = 1000
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("precision", threshold=0.95, min_effect=0.02),
        Metric("recall", threshold=0.95, min_effect=0.02),
        Metric("f1"),
        # Scored over the conflicts a case found; an errored case found none and counts as 0.
        Metric("resolution_accuracy", threshold=0.95, min_effect=0.02, on_error=0.0),
    )
    empty_answer: ClassVar[dict[str, Any]] = {"conflicts": []}

    def dataset_spec(self, records: int, seed: int) -> DatasetSpec:
        return build_spec("s02_sources", records=records, seed=seed)

    def draw_cases(self, spec: DatasetSpec | None, n: int, seed: int) -> list[Case]:
        assert spec is not None
        planted: Conflicts = oracle.of_kind(spec, "s02_conflicts")
        records = spec.records
        batch = min(BATCH, records)
        special = set(planted.entity_ids.tolist()) | set(planted.cosmetic_ids.tolist())
        cases = []
        for i in range(n):
            h = int(mix64(np.array([i], dtype=np.uint64), stream_key(seed, self.id, "case"))[0])
            n_conf = min(len(planted.entity_ids), batch, 4 + h % 7)
            n_cos = min(len(planted.cosmetic_ids), batch - n_conf, 2 + (h >> 8) % 4)
            picked = _ranked(planted.entity_ids, stream_key(seed, self.id, "conflicted", i))[:n_conf].tolist()
            picked += _ranked(planted.cosmetic_ids, stream_key(seed, self.id, "cosmetic", i))[:n_cos].tolist()
            picked += _clean_ids(records, batch - len(picked), special | set(picked), stream_key(seed, self.id, "clean", i))
            truth = case_truth(spec, picked)
            cases.append(
                Case(
                    case_id=f"{self.id}-{i:05d}",
                    index=i,
                    input=case_input(picked),
                    truth={"conflicts": truth},
                    attributes={"conflicts": len(truth), "cosmetic": n_cos, "patterns": sorted({c["pattern"] for c in truth})},
                )
            )
        return cases

    def reference_agent(self, **params: Any) -> Agent:
        return ConflictResolver(**params)

    def score(self, case: Case, answer: Answer, context: dict[str, Any]) -> CaseScore:
        zeros = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "resolution_accuracy": 0.0}
        items = answer.get("conflicts")
        if not isinstance(items, list):
            return CaseScore(False, zeros, "answer.conflicts must be a list of {entity_id, field, resolved}")
        claimed: dict[tuple[int, str], Any] = {}
        for k, item in enumerate(items):
            problem = _item_problem(item)
            if problem:
                return CaseScore(False, zeros, f"answer.conflicts[{k}] {problem}")
            claimed.setdefault((item["entity_id"], item["field"]), item.get("resolved"))
        truth = {(c["entity_id"], c["field"]): c["resolved"] for c in case.truth["conflicts"]}
        precision, recall, f1 = precision_recall_f1(set(claimed), set(truth))
        hits = set(claimed) & set(truth)
        right = sum(_same(f, claimed[(e, f)], truth[(e, f)]) for e, f in hits)
        metrics = {"precision": precision, "recall": recall, "f1": f1}
        if hits:
            metrics["resolution_accuracy"] = right / len(hits)
        passed = precision == 1.0 and recall == 1.0 and right == len(hits)
        reason = (
            None
            if passed
            else (
                f"found {len(hits)} of {len(truth)} conflicts with {len(claimed) - len(hits)} false ones; "
                f"resolved {right} of {len(hits)} found correctly"
            )
        )
        return CaseScore(passed, metrics, reason)


def _clean_ids(records: int, k: int, exclude: set[int], key: int) -> list[int]:
    out: list[int] = []
    j = 0
    while len(out) < k and j < 50 * (k + 1):
        chunk = (mix64(np.arange(j, j + 4 * (k + 1), dtype=np.uint64), key) % np.uint64(records)).tolist()
        j += 4 * (k + 1)
        for x in chunk:
            if x not in exclude and len(out) < k:
                exclude.add(x)
                out.append(int(x))
    return out


def _item_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return f"is {type(item).__name__}, not an object"
    eid = item.get("entity_id")
    if not isinstance(eid, int) or isinstance(eid, bool):
        return "has no integer entity_id"
    if item.get("field") not in FIELD_COLUMNS:
        return f"field {item.get('field')!r} is not one of {', '.join(FIELD_COLUMNS)}"
    if "resolved" not in item:
        return "has no resolved value"
    return None


def _same(field_name: str, claimed: Any, truth: Any) -> bool:
    """Whether a claimed resolved value equals the truth under the documented normalization."""
    try:
        if field_name == "mrr":
            value = float(claimed)
            return math.isfinite(value) and normalize(field_name, value) == normalize(field_name, truth)
        return isinstance(claimed, str) and normalize(field_name, claimed) == normalize(field_name, truth)
    except (TypeError, ValueError):
        return False
