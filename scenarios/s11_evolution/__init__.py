"""S11 schema evolution: say what changed in a table's schema over time, and query across it.

The ``orders`` table is written as one physical table per schema epoch (``orders__YYYYMMDD``).
Between epochs, planted changes: columns added, dropped, renamed, widened (int32 to int64,
float32 to float64) or changed in type (numbers stored as text, or text as numbers). Two kinds of
case: what changed between two dates; and a query across the whole history, which the agent can
only answer by unifying the schemas. See README.md in this package.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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
    mean,
    precision_recall_f1,
)
from scenario_pipeline.scenarios.registry import register

from .agent import EvolutionAgent
from .features import (
    CHANNELS,
    NULL_SHARE,
    REGIONS,
    TABLE,
    Evolution,
    epoch_table,
    evaluate,
)

EPOCHS = 8
KINDS = ("added", "dropped", "renamed", "widened", "type_changed")
# logical column -> its type in the first epoch
BASE = {
    "order_id": "int64",
    "order_ts": "timestamp",
    "customer": "int64",
    "region": "string",
    "sku": "string",
    "amount_cents": "int32",
    "views": "int32",
    "weight_kg": "float32",
    "unit_price": "float64",
    "zip_code": "int64",
    "tax_rate": "string",
    "discount": "float64",
    "coupon_code": "string",
    "legacy_flag": "bool",
    "channel": "string",
    "loyalty_points": "int64",
    "gift_wrap": "bool",
}
CANDIDATES: dict[str, list[tuple[str, Any]]] = {
    "renamed": [("customer", "customer_id"), ("region", "sales_region"), ("sku", "product_sku")],
    "widened": [("amount_cents", "int64"), ("views", "int64"), ("weight_kg", "float64")],
    "type_changed": [("unit_price", "string"), ("zip_code", "string"), ("tax_rate", "float64")],
    "dropped": [("discount", None), ("coupon_code", None), ("legacy_flag", None)],
    "added": [("channel", None), ("loyalty_points", None), ("gift_wrap", None)],
}
DEFINITIONS = {
    "added": "the column exists from this epoch on, not before",
    "dropped": "the column exists up to the epoch before, not from this one",
    "renamed": "the same column (the same values) under a new name; give old_name",
    "widened": "the same column in a wider type of the same family: int32 to int64, float32 to float64",
    "type_changed": "the same column in a type of another family (for example numbers stored as text)",
}
START = datetime(2025, 1, 1, tzinfo=UTC)
DAY_US = 86_400 * 1_000_000


def change_plan(seed: int) -> list[tuple[str, str, Any, int]]:
    """(kind, logical column, detail, boundary epoch) of every planted change; ~80% of the
    candidates, at least one of each kind, each at a random boundary."""
    plan = []
    for kind, items in CANDIDATES.items():
        h = mix64(np.arange(len(items), dtype=np.uint64), stream_key(seed, "s11-plan", kind)).tolist()
        chosen = [i for i, x in enumerate(h) if x % 10 < 8] or [h.index(min(h))]
        plan += [(kind, items[i][0], items[i][1], 1 + (h[i] >> 16) % (EPOCHS - 1)) for i in chosen]
    return plan


def _epoch_columns(plan: list[tuple[str, str, Any, int]], e: int) -> dict[str, tuple[str, str, bool]]:
    """logical -> (physical name, type, widened) in epoch ``e``."""
    cols = {c: (c, t, False) for c, t in BASE.items()}
    for kind, logical, detail, b in plan:
        if kind == "added" and e < b or kind == "dropped" and e >= b:
            del cols[logical]
        elif kind == "renamed" and e >= b:
            cols[logical] = (detail, cols[logical][1], False)
        elif kind in ("widened", "type_changed") and e >= b:
            cols[logical] = (cols[logical][0], detail, kind == "widened")
    return cols


@dataset("s11_orders")
def s11_orders(records: int, seed: int, partition_rows: int | None = None) -> DatasetSpec:
    """``records`` orders over 8 schema epochs of equal row counts (30 to 75 days each)."""
    per = records // EPOCHS
    if per < 1000 or records > 10_000_000:
        # the oracle evaluates each query case over every order: 10,000,000 take ~1 s a query
        raise ValueError(f"S11 needs {EPOCHS * 1000:,} to 10,000,000 records ({EPOCHS} epochs of 1,000 or more), got {records:,}")
    plan = change_plan(seed)
    lengths = [30 + int(x) % 46 for x in mix64(np.arange(EPOCHS, dtype=np.uint64), stream_key(seed, "s11-epochs")).tolist()]
    tables, start = [], START
    for e in range(EPOCHS):
        start_us = int(start.timestamp() * 1_000_000)
        cols = []
        for logical, (name, typ, widened) in _epoch_columns(plan, e).items():
            params: dict[str, Any] = {"seed": seed, "logical": logical, "type": typ, "first_id": e * per, "widened": widened}
            if logical == "order_ts":
                params.update(start_us=start_us, span_us=lengths[e] * DAY_US)
            cols.append(column(name, "s11_value", rules=Rules(max_null_rate=NULL_SHARE.get(logical, 0.0)), **params))
        tables.append(TableSpec(name=epoch_table(start.date().isoformat()), records=per, columns=tuple(cols)))
        start += timedelta(days=lengths[e])
    return DatasetSpec(
        name="s11_orders",
        seed=seed,
        records=per * EPOCHS,
        partition_rows=partition_rows or default_partition_rows(per),
        tables=tuple(tables),
        features=(FeatureSpec(kind="s11_schema_epochs", table=tables[0].name),),
    )


def changes_between(evo: Evolution, d1: str, d2: str) -> list[dict[str, Any]]:
    lo, hi = d1[:10], d2[:10]
    return [
        {
            "kind": c.kind,
            "column": c.column,
            "old_name": c.old_name,
            "from_type": c.from_type,
            "to_type": c.to_type,
            "date": c.date,
        }
        for c in evo.changes
        if lo < c.date <= hi
    ]


def _day(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).date().isoformat()


def _predicate(logical: str, name: str, h: int) -> tuple[dict[str, Any] | None, str]:
    """A condition on a column, by its kind of values (None: none fits, count its values)."""
    if logical in ("region", "channel"):
        value = (REGIONS if logical == "region" else CHANNELS)[h % 4]
        return {"column": name, "op": "=", "value": value}, f"{name} = {value!r}"
    if logical in ("zip_code", "customer"):
        width = 10_000 if logical == "zip_code" else 100_000
        low = (h % 9) * width
        return {
            "column": name,
            "op": "between",
            "low": low,
            "high": low + width - 1,
        }, f"{name} (as a number) between {low} and {low + width - 1}"
    if logical in ("legacy_flag", "gift_wrap"):
        return {"column": name, "op": "is true"}, f"{name} true"
    if logical == "sku":
        return {"column": name, "op": "is not null"}, f"a {name}"
    return None, ""


NUMERIC = ("amount_cents", "views", "weight_kg", "unit_price", "tax_rate", "discount", "loyalty_points")


def _query_for(evo: Evolution, logical: str, renamed: list[str], h: int) -> tuple[dict[str, Any], str]:
    """A query over column ``logical``, filtered by a renamed column when there is another one, so
    that reading every epoch by its latest names alone silently loses rows."""
    name = evo.latest_name(logical)
    q: dict[str, Any] = {
        "table": TABLE,
        "column": name,
        "aggregate": "sum" if logical in NUMERIC else "count",
        "where": [],
        "from": None,
        "to": None,
    }
    conds = []
    if logical in NUMERIC:
        text = f"What is the sum of {name} over orders"
    else:
        cond, cond_text = _predicate(logical, name, h)
        q["where"] += [cond] if cond else []
        conds += [cond_text] if cond else []
        text = "How many orders have " + (cond_text if cond else f"a {name}")
    others = [r for r in renamed if r != logical]
    if others:
        r = others[(h >> 4) % len(others)]
        cond, cond_text = _predicate(r, evo.latest_name(r), h >> 6)
        if cond:
            q["where"].append(cond)
            conds.append(cond_text)
    if logical in NUMERIC and conds:
        text += " with " + " and ".join(conds)
    elif len(conds) > 1:
        text += " and " + conds[1]
    if (h >> 8) % 2:
        a = (h >> 12) % (len(evo.epochs) - 1)
        b = min(len(evo.epochs) - 1, a + 1 + (h >> 16) % 3)
        ea, eb = evo.epochs[a], evo.epochs[b]
        q["from"] = _day(ea.start_us + ((h >> 20) % max(1, (ea.end_us - ea.start_us) // DAY_US)) * DAY_US)
        q["to"] = _day(eb.start_us + ((h >> 28) % max(1, (eb.end_us - eb.start_us) // DAY_US)) * DAY_US)
        text += f", with order_ts from {q['from']} (inclusive) to {q['to']} (exclusive)"
    return q, text + ", across the whole history of orders?"


def case_truth(spec: DatasetSpec, case_input: dict[str, Any]) -> dict[str, Any]:
    evo: Evolution = oracle.of_kind(spec, "s11_schema_epochs")
    if case_input["kind"] == "changes":
        return {"changes": changes_between(evo, case_input["from"], case_input["to"])}
    return {"value": evaluate(evo, case_input["query"])}


def _is_query(r: dict[str, Any]) -> bool:
    return json.loads(r.get("attributes_json") or "{}").get("kind") == "query" or "query_correct" in r["metrics"]


def _pooled_part(kind: str, part: int) -> Callable[[list[dict[str, Any]]], float]:
    """One part of ``_pooled`` (0 precision, 1 recall) of one change kind, as a run metric."""
    return lambda rows: _pooled(rows, kind)[part]


def _pooled(rows: list[dict[str, Any]], kind: str | None = None) -> tuple[float, float]:
    """Precision and recall of change labels pooled over the change cases (of one kind, or all)."""
    tp = fp = fn = 0.0
    for r in rows:
        if _is_query(r):
            continue
        attrs, m = json.loads(r.get("attributes_json") or "{}"), r["metrics"]
        for k in (kind,) if kind else KINDS:
            tp += m.get(f"tp_{k}", 0.0)
            fp += m.get(f"fp_{k}", 0.0)
            fn += m.get(f"fn_{k}", attrs.get(f"n_{k}", 0))
    nan = float("nan")
    return (tp / (tp + fp) if tp + fp else nan), (tp / (tp + fn) if tp + fn else nan)


def _query_accuracy(rows: list[dict[str, Any]]) -> float:
    return mean(r["metrics"].get("query_correct", 0.0) for r in rows if _is_query(r))


@register
class SchemaEvolution(DeclaredMetrics):
    id: ClassVar[str] = "s11-evolution"
    title: ClassVar[str] = "Schema evolution"
    purpose: ClassVar[str] = "track a table's schema changes over time and query across all of its schemas"
    default_records: ClassVar[int] = 400_000
    default_cases: ClassVar[int] = 100
    max_cases: ClassVar[int] = 1000
    metrics: ClassVar[tuple[Metric, ...]] = (
        # Pooled over every change case's (kind, column) labels.
        Metric("change_precision", threshold=0.95, min_effect=0.02, compute=lambda rows: _pooled(rows)[0]),
        Metric("change_recall", threshold=0.95, min_effect=0.02, compute=lambda rows: _pooled(rows)[1]),
        Metric("query_accuracy", threshold=0.95, min_effect=0.02, level="run", compute=_query_accuracy),
        Metric("query_correct", level="case"),
        *(
            m
            for k in KINDS
            for m in (
                Metric(f"precision_{k}", level="run", compute=_pooled_part(k, 0)),
                Metric(f"recall_{k}", level="run", compute=_pooled_part(k, 1)),
                Metric(f"tp_{k}", level="case", on_error=0.0),
                Metric(f"fp_{k}", higher_is_better=False, level="case", on_error=0.0),
                Metric(f"fn_{k}", higher_is_better=False, level="case"),
            )
        ),
    )
    empty_answer: ClassVar[dict[str, Any]] = {}

    def dataset_spec(self, records: int, seed: int) -> DatasetSpec:
        return build_spec("s11_orders", records=records, seed=seed)

    def draw_cases(self, spec: DatasetSpec | None, n: int, seed: int) -> list[Case]:
        assert spec is not None
        evo: Evolution = oracle.of_kind(spec, "s11_schema_epochs")
        changed = sorted({evo.logical_of(c.column) for c in evo.changes})
        renamed = sorted({evo.logical_of(c.column) for c in evo.changes if c.kind == "renamed"})
        hs = mix64(np.arange(n, dtype=np.uint64), stream_key(seed, self.id, "cases")).tolist()
        cases = []
        for i, h in enumerate(hs):
            base: dict[str, Any] = {"table": TABLE, "tables_prefix": TABLE + "__", "definitions": DEFINITIONS}
            if i % 2 == 0:
                a = h % (len(evo.epochs) - 1)
                b = min(len(evo.epochs) - 1, a + 1 + (h >> 8) % 3)
                ea, eb = evo.epochs[a], evo.epochs[b]
                d1 = _day(ea.start_us + ((h >> 12) % ((ea.end_us - ea.start_us) // DAY_US)) * DAY_US)
                d2 = _day(eb.start_us + ((h >> 20) % ((eb.end_us - eb.start_us) // DAY_US)) * DAY_US)
                inp = {
                    **base,
                    "kind": "changes",
                    "from": d1,
                    "to": d2,
                    "question": f"What changed in the schema of {TABLE} after {d1} up to and including {d2}?",
                }
            else:
                query, text = _query_for(evo, changed[(h >> 4) % len(changed)], renamed, h >> 8)
                inp = {
                    **base,
                    "kind": "query",
                    "query": query,
                    "question": text,
                    "semantics": "one logical table: a renamed column is the same column under every name it had; rows of "
                    "epochs without the column hold null there; numbers stored as text count as numbers",
                }
            truth = case_truth(spec, inp)
            attrs: dict[str, Any] = {"kind": inp["kind"]}
            if inp["kind"] == "changes":
                attrs.update({f"n_{k}": sum(c["kind"] == k for c in truth["changes"]) for k in KINDS})
            else:
                attrs.update(column=evo.logical_of(inp["query"]["column"]), ranged=inp["query"]["from"] is not None)
            cases.append(Case(f"{self.id}-{i:05d}", i, inp, truth, attrs))
        return cases

    def reference_agent(self, **params: Any) -> Agent:
        return EvolutionAgent(**params)

    def score(self, case: Case, answer: Answer, context: dict[str, Any]) -> CaseScore:
        if case.input["kind"] == "query":
            return _score_query(case, answer)
        return _score_changes(case, answer)


def _score_changes(case: Case, answer: Answer) -> CaseScore:
    truth = case.truth["changes"]
    zeros: dict[str, float] = {"change_precision": 0.0, "change_recall": 0.0}
    zeros.update({f"fn_{k}": float(sum(c["kind"] == k for c in truth)) for k in KINDS})
    items = answer.get("changes")
    if not isinstance(items, list):
        return CaseScore(False, zeros, "answer.changes must be a list of {kind, column, old_name}")
    claimed: set[tuple[str, str, str | None]] = set()
    for k, item in enumerate(items):
        if not isinstance(item, dict) or item.get("kind") not in KINDS or not isinstance(item.get("column"), str):
            return CaseScore(False, zeros, f"answer.changes[{k}] needs a kind (one of {', '.join(KINDS)}) and a column name")
        if item["kind"] == "renamed" and not isinstance(item.get("old_name"), str):
            return CaseScore(False, zeros, f"answer.changes[{k}] is a rename without old_name")
        claimed.add((item["kind"], item["column"], item.get("old_name") if item["kind"] == "renamed" else None))
    want = {(c["kind"], c["column"], c["old_name"] if c["kind"] == "renamed" else None) for c in truth}
    precision, recall, _ = precision_recall_f1(claimed, want)
    metrics = {"change_precision": precision, "change_recall": recall}
    for kind in KINDS:
        metrics[f"tp_{kind}"] = float(sum(1 for c in claimed & want if c[0] == kind))
        metrics[f"fp_{kind}"] = float(sum(1 for c in claimed - want if c[0] == kind))
        metrics[f"fn_{kind}"] = float(sum(1 for c in want - claimed if c[0] == kind))
    passed = claimed == want
    missed, wrong = sorted(want - claimed), sorted(claimed - want)
    return CaseScore(
        passed, metrics, None if passed else f"missed {len(missed)} change(s) {missed[:3]}; {len(wrong)} wrong {wrong[:3]}"
    )


def _score_query(case: Case, answer: Answer) -> CaseScore:
    value = answer.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return CaseScore(False, {"query_correct": 0.0}, "answer.value must be a number")
    truth = case.truth["value"]
    ok = abs(value - truth) <= (0.5 if isinstance(truth, int) else 1e-6 * max(1.0, abs(truth)))
    return CaseScore(ok, {"query_correct": 1.0 if ok else 0.0}, None if ok else f"answered {value}, expected {truth}")
