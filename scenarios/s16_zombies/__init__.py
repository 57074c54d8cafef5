"""S16 zombie tables: find the tables nobody uses any more, and the storage they hold.

A warehouse catalog (objects with kinds, sizes, creation times), its lineage (which object a view
or a job reads from) and a query log of reads and writes over 18 months. Planted zombies: no read
and no write for the case's idle window, nothing downstream. Planted traps that look dead and are
not: quarterly reports, tables read only through a view or a job, tables a job writes every week
but nobody reads, tables revived after a year, tables too new to judge. A case is one schema at one
``as_of`` date and idle window. See README.md in this package.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
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

from .agent import ZombieFinder
from .catalog_plan import (
    PROFILES,
    catalog_plan,
    plan_params,
    schema_names,
    to_us,
)
from .features import OPS, ZombieTruth

AS_OF = ("2027-01-01T00:00:00+00:00", "2026-12-01T00:00:00+00:00", "2026-11-01T00:00:00+00:00")
IDLE_DAYS = (120, 180, 270)
MIN_RECORDS, MAX_RECORDS = 20_000, 10_000_000_000
_USERS = tuple(f"analyst_{i:02d}" for i in range(12)) + tuple(f"etl_{i:02d}" for i in range(4))
RULE = (
    "a zombie is a table (not a view) created at least idle_days before as_of, with no read and no write "
    "in the query log in the idle_days up to as_of (ts > as_of - idle_days and ts <= as_of), and no lineage "
    "edge whose upstream is the table; log entries after as_of do not count"
)


@dataset("s16_catalog")
def s16_catalog(records: int, seed: int, partition_rows: int | None = None) -> DatasetSpec:
    """A catalog of ``records // 100`` objects (240 to 24,000), its lineage, and a query log of ``records`` rows."""
    if not MIN_RECORDS <= records <= MAX_RECORDS:
        raise ValueError(f"S16 needs {MIN_RECORDS:,} to {MAX_RECORDS:,} query-log records, got {records:,}")
    plan = plan_params(seed, min(24_000, max(240, records // 100)))
    edges = len(catalog_plan(plan).edges)
    query_log = TableSpec(
        name="query_log",
        columns=(
            column("query_id", "record_id"),
            column("ts", "timestamp", start=plan["log_start"] + "T00:00:00", span_days=float(plan["log_days"])),
            column("user_name", "category", values=list(_USERS)),
            column("op", "category", values=list(OPS), weights=[0.85, 0.15]),
            column("object", "s16_object_ref", plan=plan),
        ),
    )
    objects = TableSpec(
        name="objects",
        records=plan["objects"],
        columns=tuple(
            [column("object_id", "record_id")]
            + [column(f, "s16_catalog", field=f, plan=plan) for f in ("name", "schema_name", "kind", "owner")]
            + [column(f, "s16_catalog", rules=Rules(min=0), field=f, plan=plan) for f in ("bytes", "rows")]
            + [column("created_at", "s16_catalog", field="created_at", plan=plan)]
        ),
    )
    lineage = TableSpec(
        name="lineage",
        records=edges,
        columns=(
            column("upstream", "s16_lineage", field="upstream", plan=plan),
            column("downstream", "s16_lineage", field="downstream", plan=plan),
            column("via", "s16_lineage", rules=Rules(allowed=("view", "job")), field="via", plan=plan),
            column("job", "s16_lineage", rules=Rules(max_null_rate=1.0), field="job", plan=plan),
        ),
    )
    return DatasetSpec(
        name="s16_catalog",
        seed=seed,
        records=records,
        partition_rows=partition_rows or default_partition_rows(records),
        tables=(query_log, objects, lineage),
        features=(FeatureSpec(kind="s16_zombies", table="query_log", params={"plan": plan}),),
    )


def case_truth(spec: DatasetSpec, schema: str, as_of: str, idle_days: int) -> dict[str, Any]:
    """The zombies of one slice, and every table's size in it (for the bytes of false claims)."""
    truth: ZombieTruth = oracle.of_kind(spec, "s16_zombies")
    zombies = truth.zombies(schema, to_us(as_of[:10]), idle_days)
    plan = truth.plan
    sizes = {n: int(b) for n, s, b in zip(plan.names, plan.schemas, plan.bytes.tolist(), strict=True) if s == schema}
    return {
        "zombies": [
            {"table": z["table"], "bytes": z["bytes"], "profile": z["profile"], "last_access": _iso(z["last_access_us"])}
            for z in zombies
        ],
        "sizes": sizes,
    }


def case_input(schema: str, as_of: str, idle_days: int) -> dict[str, Any]:
    return {
        "question": f"Which tables of schema {schema} are zombies as of {as_of[:10]} with an idle window of {idle_days} days? Give a reason for each.",
        "schema": schema,
        "as_of": as_of,
        "idle_days": idle_days,
        "tables": {"catalog": "objects", "lineage": "lineage", "query_log": "query_log"},
        "rule": RULE,
    }


def _iso(us: int | None) -> str | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat()


def _storage_recall(rows: list[dict[str, Any]]) -> float:
    zombie_bytes = sum(_zombie_bytes(r) for r in rows)
    return sum(r["metrics"].get("saved_bytes", 0.0) for r in rows) / zombie_bytes if zombie_bytes else float("nan")


@register
class ZombieTables(DeclaredMetrics):
    id: ClassVar[str] = "s16-zombies"
    title: ClassVar[str] = "Zombie tables"
    purpose: ClassVar[str] = "find unused tables from access history and lineage without falling for look-alikes"
    default_records: ClassVar[int] = 240_000
    default_cases: ClassVar[int] = 60
    max_cases: ClassVar[int] = 1000
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("precision", threshold=0.95, min_effect=0.02),
        Metric("recall", threshold=0.95, min_effect=0.02),
        Metric("f1"),
        # Bytes-weighted over the run: the share of the zombies' storage the agent would free.
        Metric("storage_recall", threshold=0.95, min_effect=0.02, compute=_storage_recall),
        Metric("saved_bytes", level="case"),
        Metric("wrong_bytes", higher_is_better=False, level="case", on_error=0.0),  # flagged nothing
        Metric("zombie_bytes", level="case", source="diagnostic"),
        Metric("saved_bytes_per_case", of="saved_bytes", level="run"),
        Metric("wrong_bytes_per_case", higher_is_better=False, of="wrong_bytes", level="run"),
        # Over the zombies a case found; an errored case found none and counts as 0.
        Metric("last_access_accuracy", on_error=0.0),
    )
    empty_answer: ClassVar[dict[str, Any]] = {"zombies": []}

    def dataset_spec(self, records: int, seed: int) -> DatasetSpec:
        return build_spec("s16_catalog", records=records, seed=seed)

    def draw_cases(self, spec: DatasetSpec | None, n: int, seed: int) -> list[Case]:
        assert spec is not None
        truth: ZombieTruth = oracle.of_kind(spec, "s16_zombies")
        schemas = schema_names(len(truth.plan.names))
        combos = [(s, a, d) for s in schemas for a in AS_OF for d in IDLE_DAYS]
        # A seeded order of the slices; past their number, cases repeat slices in the same order.
        order = np.argsort(mix64(np.arange(len(combos), dtype=np.uint64), stream_key(seed, self.id, "cases")), kind="stable")
        cases = []
        for i in range(n):
            schema, as_of, idle = combos[int(order[i % len(combos)])]
            t = case_truth(spec, schema, as_of, idle)
            traps = _trap_counts(truth, schema)
            cases.append(
                Case(
                    case_id=f"{self.id}-{i:05d}",
                    index=i,
                    input=case_input(schema, as_of, idle),
                    truth=t,
                    attributes={
                        "schema": schema,
                        "as_of": as_of[:10],
                        "idle_days": idle,
                        "zombies": len(t["zombies"]),
                        "zombie_bytes": sum(z["bytes"] for z in t["zombies"]),
                        **traps,
                    },
                )
            )
        return cases

    def reference_agent(self, **params: Any) -> Agent:
        return ZombieFinder(**params)

    def score(self, case: Case, answer: Answer, context: dict[str, Any]) -> CaseScore:
        zombie_bytes = sum(z["bytes"] for z in case.truth["zombies"])
        zeros = {
            "precision": 0.0,
            "recall": 0.0,
            "f1": 0.0,
            "storage_recall": 0.0,
            "zombie_bytes": float(zombie_bytes),
            "saved_bytes": 0.0,
        }
        items = answer.get("zombies")
        if not isinstance(items, list):
            return CaseScore(False, zeros, "answer.zombies must be a list of {table, reason, last_access}")
        claimed: dict[str, Any] = {}
        for k, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("table"), str):
                return CaseScore(False, zeros, f"answer.zombies[{k}] has no table name")
            if not isinstance(item.get("reason"), str) or not item["reason"].strip():
                return CaseScore(False, zeros, f"answer.zombies[{k}] ({item['table']}) gives no reason")
            claimed.setdefault(item["table"], item.get("last_access"))
        truth = {z["table"]: z for z in case.truth["zombies"]}
        precision, recall, f1 = precision_recall_f1(set(claimed), set(truth))
        hits = set(claimed) & set(truth)
        saved = sum(truth[t]["bytes"] for t in hits)
        metrics = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "zombie_bytes": float(zombie_bytes),
            "saved_bytes": float(saved),
            "wrong_bytes": float(sum(case.truth["sizes"].get(t, 0) for t in set(claimed) - hits)),
        }
        if zombie_bytes:
            metrics["storage_recall"] = saved / zombie_bytes
        if hits:
            metrics["last_access_accuracy"] = sum(_same_day(claimed[t], truth[t]["last_access"]) for t in hits) / len(hits)
        passed = precision == 1.0 and recall == 1.0
        reason = (
            None if passed else f"found {len(hits)} of {len(truth)} zombies with {len(claimed) - len(hits)} live tables flagged"
        )
        return CaseScore(passed, metrics, reason)


def _zombie_bytes(row: dict[str, Any]) -> float:
    """A case's true zombie bytes: from its metrics, or its attributes when the agent failed."""
    if "zombie_bytes" in row["metrics"]:
        return float(row["metrics"]["zombie_bytes"])
    return float(json.loads(row.get("attributes_json") or "{}").get("zombie_bytes", 0))


def _trap_counts(truth: ZombieTruth, schema: str) -> dict[str, int]:
    plan = truth.plan
    in_slice = [int(p) for p, s in zip(plan.profile.tolist(), plan.schemas, strict=True) if s == schema]
    return {f"n_{name}": in_slice.count(i) for i, name in enumerate(PROFILES) if name not in ("active", "view")}


def _same_day(claimed: Any, truth: str | None) -> bool:
    """A reported last access matches when both are absent or they are within a day of each other."""
    if truth is None or claimed is None:
        return truth is None and claimed is None
    try:
        a = datetime.fromisoformat(str(claimed).replace("Z", "+00:00"))
        b = datetime.fromisoformat(truth)
        a = a if a.tzinfo else a.replace(tzinfo=UTC)
        return abs((a - b).total_seconds()) <= 86_400
    except ValueError:
        return False
