"""S16 zombie tables, part 1: the catalog plan: objects, their profiles, sizes and lineage.

The plan is a pure function of its params (``seed``, ``objects``, ``log_start``, ``log_days``),
cached per process. Column kinds ``s16_catalog`` (one row per object) and ``s16_lineage`` (one
row per edge) write it out; the ``s16_zombies`` feature plants the query log around it.

Profiles (the planted truth, never written to the data):
  active          read and written through the whole log (background traffic plus a read every ~40 days)
  view            a view over one or two tables, read like an active table; never a zombie (no storage)
  zombie          last read or written 60 to 480 days before the log ends (or never); nothing downstream
  quarterly       a report table read (and refreshed) in the first days of every calendar quarter
  job_written     written every week by a job, read once long ago
  revived         read early, idle for a year, then read again in the log's last 25 days
  new             created in the log's last 100 days and not used yet
  read_downstream never queried directly, but a view or a job reads it (a lineage edge downstream)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets.columns import register_column_kind
from scenario_pipeline.datasets.hashing import mix64, stream_key, unit_float
from scenario_pipeline.datasets.spec import ColumnSpec

PROFILES = ("active", "view", "zombie", "quarterly", "job_written", "revived", "new", "read_downstream")
# Share of objects per profile (the rest are active), in this order.
SHARES = (
    ("view", 0.10),
    ("zombie", 0.08),
    ("quarterly", 0.03),
    ("job_written", 0.03),
    ("revived", 0.02),
    ("new", 0.02),
    ("read_downstream", 0.04),
)
P = {name: i for i, name in enumerate(PROFILES)}
DAY_US = 86_400 * 1_000_000
_SCHEMAS = ("sales", "finance", "marketing", "ops", "product", "support", "people", "risk", "growth", "data", "supply", "legal")
_ADJ = ("daily", "weekly", "monthly", "raw", "clean", "agg", "stg", "dim", "fct", "tmp", "bak", "hist")
_NOUN = (
    "orders",
    "customers",
    "invoices",
    "events",
    "sessions",
    "tickets",
    "payments",
    "leads",
    "shipments",
    "accounts",
    "refunds",
    "campaigns",
    "products",
    "users",
    "metrics",
    "snapshots",
)
_TEAMS = ("analytics", "data-eng", "finance-bi", "growth", "platform", "ml")


def to_us(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1_000_000)


@dataclass(frozen=True)
class CatalogPlan:
    names: tuple[str, ...]
    schemas: tuple[str, ...]  # the schema of each object
    profile: np.ndarray  # int8 index into PROFILES
    bytes: np.ndarray  # int64; 0 for views
    rows: np.ndarray  # int64
    created_us: np.ndarray  # int64
    owners: tuple[str, ...]
    edges: tuple[tuple[int, int, str, str | None], ...]  # (upstream, downstream, via, job)
    start_us: int
    end_us: int

    @property
    def has_downstream(self) -> np.ndarray:
        out = np.zeros(len(self.names), dtype=bool)
        out[[e[0] for e in self.edges]] = True
        return out

    @property
    def background(self) -> np.ndarray:
        """Objects the query log's background traffic may touch: active tables and views."""
        return np.flatnonzero((self.profile == P["active"]) | (self.profile == P["view"]))


def schema_names(objects: int) -> tuple[str, ...]:
    count = max(4, objects // 200)
    return tuple(_SCHEMAS[i % len(_SCHEMAS)] + ("" if i < len(_SCHEMAS) else str(i // len(_SCHEMAS))) for i in range(count))


def plan_params(seed: int, objects: int, log_start: str = "2025-07-01", log_days: int = 549) -> dict[str, Any]:
    return {"seed": seed, "objects": objects, "log_start": log_start, "log_days": log_days}


def catalog_plan(params: dict[str, Any]) -> CatalogPlan:
    return _plan(json.dumps(params, sort_keys=True))


@lru_cache(maxsize=8)
def _plan(key: str) -> CatalogPlan:
    p = json.loads(key)
    seed, n = p["seed"], p["objects"]
    idx = np.arange(n, dtype=np.uint64)
    hk = lambda *parts: mix64(idx, stream_key(seed, "s16", *parts))  # noqa: E731 - a local shorthand
    schemas_all = schema_names(n)
    schema_of = [schemas_all[i % len(schemas_all)] for i in range(n)]
    h = hk("name")
    names = tuple(
        f"{schema_of[i]}.{_ADJ[int(a) % len(_ADJ)]}_{_NOUN[int(b) % len(_NOUN)]}_{i // len(schemas_all)}"
        for i, (a, b) in enumerate(zip(h, h >> np.uint64(16), strict=True))
    )
    u = unit_float(hk("profile"))
    profile = np.full(n, P["active"], dtype=np.int8)
    edge_at = 0.0
    for name, share in SHARES:
        profile[(u >= edge_at) & (u < edge_at + share)] = P[name]
        edge_at += share
    profile[0], profile[1] = P["active"], P["view"]  # every plan has a table to read from and a view
    start_us = to_us(p["log_start"])
    end_us = start_us + p["log_days"] * DAY_US
    size = unit_float(hk("bytes"))
    nbytes = np.where(profile == P["view"], 0, (10 ** (5 + 5 * size)).astype(np.int64))
    rows = np.where(profile == P["view"], 0, nbytes // (50 + (hk("rows") % np.uint64(150)).astype(np.int64)))
    age = unit_float(hk("created"))
    created = np.where(
        profile == P["new"],
        end_us - ((5 + 95 * age) * DAY_US).astype(np.int64),
        start_us - ((30 + 870 * age) * DAY_US).astype(np.int64),
    )
    owners = tuple(_TEAMS[int(x) % len(_TEAMS)] for x in hk("owner"))
    return CatalogPlan(
        names,
        tuple(schema_of),
        profile,
        nbytes.astype(np.int64),
        rows.astype(np.int64),
        created.astype(np.int64),
        owners,
        _edges(seed, profile),
        start_us,
        end_us,
    )


def _edges(seed: int, profile: np.ndarray) -> tuple[tuple[int, int, str, str | None], ...]:
    n = len(profile)
    active = np.flatnonzero(profile == P["active"])
    views = np.flatnonzero(profile == P["view"])
    h = mix64(np.arange(n, dtype=np.uint64), stream_key(seed, "s16", "edges")).tolist()
    edges: dict[tuple[int, int], tuple[int, int, str, str | None]] = {}

    def add(up: int, down: int, via: str, job: str | None = None) -> None:
        if up != down:
            edges.setdefault((up, down), (up, down, via, job))

    for v in views.tolist():  # each view reads one or two active tables
        for k in range(1 + h[v] % 2):
            add(int(active[(h[v] >> (8 + 16 * k)) % len(active)]), v, "view")
    for i in range(n):
        x, job = h[i], f"job_{h[i] % 10_000:04d}"
        if profile[i] == P["read_downstream"]:  # only a view or a job reads it
            if x & 1:
                add(i, int(views[(x >> 8) % len(views)]), "view")
            else:
                add(i, int(active[(x >> 8) % len(active)]), "job", job)
        elif profile[i] == P["active"] and (x >> 4) % 10 < 3:
            add(i, int(active[(x >> 8) % len(active)]), "job", job)
        elif profile[i] == P["zombie"] and (x >> 4) % 2 == 0:  # a dead job once built it
            add(int(active[(x >> 8) % len(active)]), i, "job", job)
    return tuple(edges[k] for k in sorted(edges))


@register_column_kind("s16_catalog", hashed=False)
def _catalog(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    """One catalog field (param ``field``) of objects ``ids`` under the plan in ``plan``."""
    plan = catalog_plan(col.params["plan"])
    i = ids.astype(np.int64)
    f = col.params["field"]
    if f == "name":
        return pa.array([plan.names[k] for k in i], pa.string())
    if f == "schema_name":
        return pa.array([plan.schemas[k] for k in i], pa.string())
    if f == "kind":
        return pa.array(np.where(plan.profile[i] == P["view"], "view", "table").tolist(), pa.string())
    if f == "owner":
        return pa.array([plan.owners[k] for k in i], pa.string())
    if f in ("bytes", "rows"):
        return pa.array(getattr(plan, f)[i], pa.int64())
    if f == "created_at":
        return pa.array(plan.created_us[i], pa.timestamp("us", tz="UTC"))
    raise ValueError(f"unknown s16_catalog field {f!r}")


@register_column_kind("s16_lineage", hashed=False)
def _lineage(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    """One lineage field (``upstream``, ``downstream``, ``via``, ``job``) of edges ``ids``."""
    plan = catalog_plan(col.params["plan"])
    edges = [plan.edges[k] for k in ids.astype(np.int64)]
    f = col.params["field"]
    if f in ("upstream", "downstream"):
        return pa.array([plan.names[e[0] if f == "upstream" else e[1]] for e in edges], pa.string())
    if f == "via":
        return pa.array([e[2] for e in edges], pa.string())
    if f == "job":
        return pa.array([e[3] for e in edges], pa.string())
    raise ValueError(f"unknown s16_lineage field {f!r}")
