"""S14 natural-language questions over a small star schema, scored by execution accuracy.

Cases are English questions from templates with paraphrases (scenarios/query_templates.py),
each with a gold SQL query. The agent answers with one SQL query. The scorer runs gold and
answer on a read-only, time-limited copy of the dataset (scenarios/sql_sandbox.py) and counts
the answer correct when its result equals the gold result as BIRD defines it: the sets of
result rows are equal (lists, when the question asks for an order); SQL that fails to run,
times out or is not a single SELECT scores 0. See README.md in this package.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from scenario_pipeline.datasets import kinds_query  # noqa: F401 - registers the id_label column kind
from scenario_pipeline.datasets.catalog import dataset, default_partition_rows
from scenario_pipeline.datasets.hashing import mix64_scalars, stream_key
from scenario_pipeline.datasets.spec import DatasetSpec, TableSpec, column
from scenario_pipeline.errors import UsageError
from scenario_pipeline.scenarios.base import Agent, Answer, Case, CaseScore, Metric
from scenario_pipeline.scenarios.declared import DeclaredMetrics
from scenario_pipeline.scenarios.query_templates import TEMPLATES, build_question
from scenario_pipeline.scenarios.registry import register
from scenario_pipeline.scenarios.sql_sandbox import (
    QueryResult,
    database_for,
    normalize_rows,
)

from .agent import QueryAgent

REGIONS = ("central", "east", "north", "south", "west")
CITIES = (
    "Avonport",
    "Brightwater",
    "Cedar Falls",
    "Dunmore",
    "Eastbrook",
    "Fairhaven",
    "Glenwood",
    "Harborview",
    "Ironvale",
    "Juniper",
    "Kingsley",
    "Lakeside",
)
CATEGORIES = ("books", "electronics", "garden", "grocery", "kitchen", "outdoor", "sports", "toys")
BRANDS = ("Acme", "Bolt", "Crest", "Dune", "Echo", "Flint", "Granite", "Helio", "Iris", "Jade")
SEGMENTS = ("consumer", "corporate", "home office")
COUNTRIES = ("Canada", "France", "Germany", "Japan", "Mexico", "Spain", "United Kingdom", "United States")
CHANNELS = ("online", "store", "phone")
STORES, PRODUCTS, CUSTOMERS = 40, 200, 2000
MAX_RECORDS = 5_000_000  # the scorer copies the dataset into a DuckDB file per worker
SQL_TYPES = {
    "record_id": "BIGINT",
    "int": "BIGINT",
    "float": "DOUBLE",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "category": "VARCHAR",
    "id_label": "VARCHAR",
}


def star_tables(records: int) -> tuple[TableSpec, ...]:
    return (
        TableSpec(
            name="sales",
            columns=(
                column("sale_id", "record_id"),
                column("ts", "timestamp", start="2026-01-01T00:00:00", span_days=365.0),
                column("store_id", "int", low=0, high=STORES),
                column("product_id", "int", low=0, high=PRODUCTS),
                column("customer_id", "int", low=0, high=CUSTOMERS),
                column("channel", "category", values=list(CHANNELS), weights=[0.5, 0.4, 0.1]),
                column("quantity", "int", low=1, high=11, bits=32),
                column("amount", "float", low=1.0, high=500.0, decimals=2),
            ),
        ),
        TableSpec(
            name="stores",
            records=STORES,
            columns=(
                column("store_id", "record_id"),
                column("store_name", "id_label", prefix="Store", width=3),
                column("city", "category", values=list(CITIES)),
                column("region", "category", values=list(REGIONS)),
            ),
        ),
        TableSpec(
            name="products",
            records=PRODUCTS,
            columns=(
                column("product_id", "record_id"),
                column("product_name", "id_label", prefix="Product", width=3),
                column("category", "category", values=list(CATEGORIES)),
                column("brand", "category", values=list(BRANDS)),
                column("list_price", "float", low=5.0, high=300.0, decimals=2),
            ),
        ),
        TableSpec(
            name="customers",
            records=CUSTOMERS,
            columns=(
                column("customer_id", "record_id"),
                column("customer_name", "id_label", prefix="Customer", width=4),
                column("segment", "category", values=list(SEGMENTS)),
                column("country", "category", values=list(COUNTRIES)),
            ),
        ),
    )


@dataset("star_sales")
def star_sales(records: int, seed: int, partition_rows: int | None = None) -> DatasetSpec:
    """A sales fact of ``records`` rows with store, product and customer dimensions (one partition each)."""
    if not CUSTOMERS <= records <= MAX_RECORDS:
        raise UsageError(f"s14-query's fact table holds {CUSTOMERS:,} to {MAX_RECORDS:,} records, got {records:,}")
    return DatasetSpec(
        name="star_sales",
        seed=seed,
        records=records,
        partition_rows=partition_rows or default_partition_rows(records),
        tables=star_tables(records),
    )


def schema_of(spec: DatasetSpec) -> dict[str, list[list[str]]]:
    """What the agent is told: every table's columns and SQL types."""
    return {t.name: [[c.name, SQL_TYPES[c.kind]] for c in t.columns] for t in spec.tables}


_GOLD: dict[tuple[str, str], QueryResult] = {}
_GOLD_LOCK = threading.Lock()


@register
class NaturalLanguageQuery(DeclaredMetrics):
    id: ClassVar[str] = "s14-query"
    title: ClassVar[str] = "Natural-language questions"
    purpose: ClassVar[str] = "answer English questions over a star schema with SQL that returns the right rows"
    default_records: ClassVar[int] = 200_000
    default_cases: ClassVar[int] = 100
    max_cases: ClassVar[int] = 1000
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("execution_accuracy", threshold=0.9, min_effect=0.02),
        # An errored case gave no SQL that runs: it counts as an SQL error.
        Metric("sql_error_rate", higher_is_better=False, of="sql_error", threshold=0.05, min_effect=0.02, on_error=1.0),
    )
    empty_answer: ClassVar[dict[str, Any]] = {"sql": ""}

    def __init__(self, query_timeout_s: float = 10.0) -> None:
        self.query_timeout_s = query_timeout_s

    def dataset_spec(self, records: int, seed: int) -> DatasetSpec:
        return star_sales(records=records, seed=seed)

    def draw_cases(self, spec: DatasetSpec | None, n: int, seed: int) -> list[Case]:
        assert spec is not None
        key = stream_key(seed, self.id, "cases")
        names = sorted(TEMPLATES)
        pools: dict[str, Any] = {
            "region": REGIONS,
            "segment": SEGMENTS,
            "category": CATEGORIES,
            "brand": BRANDS,
            "country": COUNTRIES,
            "month": tuple(range(1, 13)),
            "k": (3, 5, 10),
            "price": (50, 100, 150, 200, 250),
            "store": tuple(f"Store {i:03d}" for i in range(STORES)),
        }
        schema = schema_of(spec)
        cases = []
        for i in range(n):
            h = mix64_scalars(key, i)
            template = names[h % len(names)]
            slots = {
                slot: pools[slot][mix64_scalars(key, i, j + 1) % len(pools[slot])]
                for j, slot in enumerate(TEMPLATES[template][1])
            }
            q = build_question(template, slots, h >> 32)
            cases.append(
                Case(
                    case_id=f"{self.id}-{i:05d}",
                    index=i,
                    input={
                        "question": q.text,
                        "dialect": "duckdb",
                        "schema": schema,
                        "answer_format": "one SQL SELECT statement in answer.sql",
                    },
                    truth={"sql": q.sql, "ordered": q.ordered, "template": template},
                    attributes={"template": template, "ordered": q.ordered},
                )
            )
        return cases

    def reference_agent(self, **params: Any) -> Agent:
        return QueryAgent(**params)

    def _gold(self, case: Case, context: dict[str, Any]) -> QueryResult:
        key = (context["dataset"]["url"], case.truth["sql"])
        with _GOLD_LOCK:
            hit = _GOLD.get(key)
        if hit is None:
            hit = database_for(context).run(case.truth["sql"], self.query_timeout_s)
            with _GOLD_LOCK:
                _GOLD[key] = hit
        return hit

    def score(self, case: Case, answer: Answer, context: dict[str, Any]) -> CaseScore:
        failed = {"execution_accuracy": 0.0, "sql_error": 1.0}
        sql = answer.get("sql") if isinstance(answer, dict) else None
        if not isinstance(sql, str) or not sql.strip():
            return CaseScore(False, failed, "answer.sql must be a non-empty string holding one SQL query")
        gold = self._gold(case, context)
        if gold.rows is None:
            return CaseScore(
                False, {"execution_accuracy": 0.0, "sql_error": 0.0}, f"gold SQL did not run (a harness bug): {gold.error}"
            )
        got = database_for(context).run(sql, self.query_timeout_s)
        if got.rows is None:
            return CaseScore(False, failed, got.error)
        want_rows, got_rows = normalize_rows(gold.rows), normalize_rows(got.rows)
        same = want_rows == got_rows if case.truth["ordered"] else set(want_rows) == set(got_rows)
        if same:
            return CaseScore(True, {"execution_accuracy": 1.0, "sql_error": 0.0})
        how = "in the asked order " if case.truth["ordered"] else ""
        return CaseScore(
            False,
            {"execution_accuracy": 0.0, "sql_error": 0.0},
            f"result differs {how}from the gold result: {len(got_rows)} rows against {len(want_rows)}, e.g. {got_rows[:2]} vs {want_rows[:2]}",
        )
