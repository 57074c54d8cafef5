"""S11 schema evolution: one logical table written as one physical table per schema epoch.

The engine writes one schema per table, so the evolving ``orders`` table is a run of tables
``orders__YYYYMMDD`` (the epoch's first day; names sort in time order), all with the same row
count. Each physical column has kind ``s11_value`` and says which logical column it stores
(``logical``) and how (``type``); a logical column's values depend only on the global order id,
so a renamed or retyped column still holds the same kind of values. Feature kind
``s11_schema_epochs`` plants nothing in the data: its truth is the list of changes between
consecutive epochs, read from the table specs, and ``evaluate`` answers cross-history queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets.columns import register_column_kind
from scenario_pipeline.datasets.features import register_feature_kind
from scenario_pipeline.datasets.hashing import mix64, stream_key
from scenario_pipeline.datasets.spec import ColumnSpec, DatasetSpec, FeatureSpec

TABLE = "orders"
ARROW_TYPES = {
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
WIDENINGS = {("int32", "int64"), ("float32", "float64")}
REGIONS = ("north", "south", "east", "west", "central", "export")
CHANNELS = ("web", "store", "app", "partner")
NULL_SHARE = {"discount": 0.3, "coupon_code": 0.8, "channel": 0.05, "loyalty_points": 0.2}


def epoch_table(start_day: str) -> str:
    return f"{TABLE}__{start_day.replace('-', '')}"


def _h(seed: int, logical: str, gids: np.ndarray) -> np.ndarray:
    return mix64(gids.astype(np.uint64), stream_key(seed, "s11", logical))


def logical_values(seed: int, logical: str, gids: np.ndarray, widened: bool, text: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(values, valid) of a logical column for global order ids: numbers as numbers (strings and
    booleans as object / bool arrays). ``widened``: the epoch is past the column's widening, so
    its values may leave the narrow type's range. ``text=False``: codes instead of formatted
    strings for sku and coupon_code (when only their nulls matter)."""
    h = _h(seed, logical, gids)
    valid = (h >> np.uint64(48)) >= np.uint64(int(NULL_SHARE.get(logical, 0.0) * 65536))
    u64 = np.uint64
    if logical == "customer":
        v: np.ndarray = (h % u64(1_000_000)).astype(np.int64)
    elif logical == "region":
        v = np.array(REGIONS, dtype=object)[(h % u64(len(REGIONS))).astype(np.int64)]
    elif logical == "sku":
        v = (h % u64(5000)).astype(np.int64)
        v = np.array([f"SKU-{x:05d}" for x in v.tolist()], dtype=object) if text else v
    elif logical == "amount_cents":
        v = (h % u64(6_000_000_000 if widened else 2_000_000)).astype(np.int64)
    elif logical == "views":
        v = (h % u64(5_000_000_000 if widened else 100_000)).astype(np.int64)
    elif logical == "weight_kg":
        v = (h % u64(100_000)).astype(np.float64) / 100.0
        v = v if widened else v.astype(np.float32).astype(np.float64)
    elif logical == "unit_price":
        v = (h % u64(100_000)).astype(np.int64)  # cents; divided below so the sum stays exact
    elif logical == "zip_code":
        v = (h % u64(100_000)).astype(np.int64)
    elif logical == "tax_rate":
        v = (h % u64(1000)).astype(np.float64) / 10_000.0
    elif logical == "discount":
        v = (h % u64(5000)).astype(np.float64) / 10_000.0
    elif logical == "coupon_code":
        v = (h % u64(10_000)).astype(np.int64)
        v = np.array([f"CPN-{x:04d}" for x in v.tolist()], dtype=object) if text else v
    elif logical == "legacy_flag":
        v = (h % u64(10)) != 0  # 90% true
    elif logical == "channel":
        v = np.array(CHANNELS, dtype=object)[(h % u64(len(CHANNELS))).astype(np.int64)]
    elif logical == "loyalty_points":
        v = (h % u64(10_001)).astype(np.int64)
    elif logical == "gift_wrap":
        v = (h % u64(10)) == 0  # 10% true
    else:
        raise ValueError(f"unknown S11 logical column {logical!r}")
    if logical == "unit_price":
        v = v.astype(np.float64) / 100.0
    return v, valid


def _render(values: np.ndarray, valid: np.ndarray, logical: str, typ: str) -> pa.Array:
    """The physical column: the logical values stored as ``typ`` (numbers as text when a string)."""
    mask = None if valid.all() else ~valid
    if typ == "string" and values.dtype != object:
        fmt = {"unit_price": "{:.2f}", "zip_code": "{:05d}", "tax_rate": "{:.4f}"}.get(logical, "{}")
        return pa.array([fmt.format(x) for x in values.tolist()], pa.string(), mask=mask)
    return pa.array(values, ARROW_TYPES[typ], mask=mask) if typ != "string" else pa.array(values.tolist(), pa.string(), mask=mask)


@register_column_kind("s11_value", hashed=False)
def _value(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    """params: ``seed``, ``logical``, ``type``, ``first_id`` (the epoch's first global order id),
    ``widened``; for ``order_ts`` also ``start_us`` and ``span_us`` (the epoch's time range)."""
    p = col.params
    gids = ids.astype(np.int64) + p["first_id"]
    if p["logical"] == "order_id":
        return pa.array(gids, pa.int64())
    if p["logical"] == "order_ts":
        step = p["span_us"] // records
        jitter = (_h(p["seed"], "order_ts", gids) % np.uint64(max(1, step))).astype(np.int64)
        return pa.array(p["start_us"] + ids.astype(np.int64) * step + jitter, ARROW_TYPES["timestamp"])
    values, valid = logical_values(p["seed"], p["logical"], gids, p.get("widened", False))
    return _render(values, valid, p["logical"], p["type"])


# -- the truth ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Epoch:
    table: str
    start_us: int
    end_us: int
    first_id: int
    rows: int
    columns: dict[str, tuple[str, str]]  # logical -> (physical name, type)
    widened: frozenset[str]


@dataclass(frozen=True)
class Change:
    boundary: int  # index of the epoch that starts with the change
    date: str  # that epoch's first day
    kind: str  # added | dropped | renamed | widened | type_changed
    column: str  # the name after the change (for dropped: the name it had)
    old_name: str | None = None
    from_type: str | None = None
    to_type: str | None = None


@dataclass(frozen=True)
class Evolution:
    epochs: tuple[Epoch, ...]
    changes: tuple[Change, ...]
    seed: int

    def latest_name(self, logical: str) -> str:
        return [e.columns[logical][0] for e in self.epochs if logical in e.columns][-1]

    def logical_of(self, name: str) -> str:
        for e in reversed(self.epochs):
            for logical, (physical, _) in e.columns.items():
                if physical == name:
                    return logical
        raise KeyError(name)


def evolution_of(spec: DatasetSpec) -> Evolution:
    epochs = []
    for t in sorted((t for t in spec.tables if t.name.startswith(TABLE + "__")), key=lambda t: t.name):
        ts = t.column("order_ts").params
        cols = {c.params["logical"]: (c.name, c.params["type"]) for c in t.columns}
        widened = frozenset(c.params["logical"] for c in t.columns if c.params.get("widened"))
        epochs.append(
            Epoch(
                t.name, ts["start_us"], ts["start_us"] + ts["span_us"], ts["first_id"], spec.table_records(t.name), cols, widened
            )
        )
    changes = []
    for b in range(1, len(epochs)):
        before, after = epochs[b - 1].columns, epochs[b].columns
        day = datetime.fromtimestamp(epochs[b].start_us / 1e6, tz=UTC).date().isoformat()
        for logical in sorted(set(before) | set(after)):
            if logical not in after:
                changes.append(Change(b, day, "dropped", before[logical][0], from_type=before[logical][1]))
            elif logical not in before:
                changes.append(Change(b, day, "added", after[logical][0], to_type=after[logical][1]))
            elif before[logical][0] != after[logical][0]:
                changes.append(Change(b, day, "renamed", after[logical][0], old_name=before[logical][0]))
            elif before[logical][1] != after[logical][1]:
                kind = "widened" if (before[logical][1], after[logical][1]) in WIDENINGS else "type_changed"
                changes.append(Change(b, day, kind, after[logical][0], from_type=before[logical][1], to_type=after[logical][1]))
    return Evolution(tuple(epochs), tuple(changes), spec.seed)


def evaluate(evo: Evolution, query: dict[str, Any]) -> float | int:
    """The answer of a cross-history query, from the logical values (never from the files).

    ``query``: ``column`` (aggregated: ``sum`` of its values or ``count`` of its non-null values),
    ``where`` (conditions ``{"column", "op": "=" | "between" | "is true" | "is not null", ...}``, all must hold; a
    condition on a column an epoch lacks holds for none of its rows), ``from`` / ``to`` (order_ts).
    """
    logical = evo.logical_of(query["column"])
    lo = _us(query.get("from"), -(2**62))
    hi = _us(query.get("to"), 2**62)
    conditions = [(evo.logical_of(c["column"]), c) for c in query.get("where") or []]
    total: Any = 0
    for e in evo.epochs:
        if logical not in e.columns or e.end_us <= lo or e.start_us >= hi or any(c not in e.columns for c, _ in conditions):
            continue
        local = np.arange(e.rows, dtype=np.uint64)
        gids = local.astype(np.int64) + e.first_id
        ts = (
            _value(
                ColumnSpec(
                    name="t",
                    kind="s11_value",
                    params={
                        "seed": evo.seed,
                        "logical": "order_ts",
                        "type": "timestamp",
                        "first_id": e.first_id,
                        "start_us": e.start_us,
                        "span_us": e.end_us - e.start_us,
                    },
                ),
                local,
                local,
                e.rows,
            )
            .cast(pa.int64())
            .to_numpy()
        )
        values, keep = logical_values(evo.seed, logical, gids, logical in e.widened, text=False)
        keep = keep & (ts >= lo) & (ts < hi)
        for cond_logical, cond in conditions:
            v, valid = logical_values(evo.seed, cond_logical, gids, cond_logical in e.widened, text=cond["op"] == "=")
            keep &= valid & _holds(v, cond)
        if query["aggregate"] == "sum":
            total += _exact_sum(logical, values[keep])
        else:
            total += int(keep.sum())
    return total


def _holds(values: np.ndarray, cond: dict[str, Any]) -> np.ndarray:
    if cond["op"] == "=":
        return values == cond["value"]
    if cond["op"] == "between":
        return (values >= cond["low"]) & (values <= cond["high"])
    if cond["op"] == "is true":
        return values.astype(bool)
    if cond["op"] == "is not null":
        return np.ones(len(values), dtype=bool)  # nulls are already out
    raise ValueError(f"unknown condition {cond['op']!r}")


def _exact_sum(logical: str, values: np.ndarray) -> float | int:
    if values.dtype.kind in "iu":
        return int(values.sum(dtype=np.int64))
    if logical == "unit_price":  # cents: sum them as integers, divide once
        return int(np.round(values * 100).astype(np.int64).sum()) / 100.0
    return float(np.sum(values, dtype=np.float64))


def _us(iso: str | None, default: int) -> int:
    if not iso:
        return default
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1_000_000)


@register_feature_kind("s11_schema_epochs")
class SchemaEpochKind:
    def truth(self, spec: DatasetSpec, feature: FeatureSpec) -> Evolution:
        return evolution_of(spec)

    def plant(self, tbl: pa.Table, spec: DatasetSpec, feature: FeatureSpec, truth: Evolution, start: int, stop: int) -> pa.Table:
        return tbl  # the changes are in the table specs themselves
