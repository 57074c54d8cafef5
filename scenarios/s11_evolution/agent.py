"""Reference agent for S11: reconstruct a table's schema history from its epoch files, then use
it to say what changed between two dates and to run queries over one unified table.

History: each epoch's Parquet schema (footer only), diffed with the next. A column that leaves
and one that arrives at the same boundary with the same type are a rename when their values look
alike (null share, range and mean for numbers, the set of values for text, the share of true for
booleans); the two epochs' data are profiled with DuckDB to decide. Queries: one SELECT per epoch
mapping each epoch's name and type of the asked column onto the latest, UNION ALL, aggregate.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow.parquet as pq

from scenario_pipeline.agents.reference.dataset_access import (
    dataset_filesystem,
    is_local,
)
from scenario_pipeline.storage import Storage

_TYPE_NAMES = {
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "float": "float32",
    "halffloat": "float16",
    "double": "float64",
    "string": "string",
    "large_string": "string",
    "bool": "bool",
}
_WIDER = {
    ("int8", "int16"),
    ("int8", "int32"),
    ("int8", "int64"),
    ("int16", "int32"),
    ("int16", "int64"),
    ("int32", "int64"),
    ("float16", "float32"),
    ("float16", "float64"),
    ("float32", "float64"),
}
_NUMERIC = ("int8", "int16", "int32", "int64", "float16", "float32", "float64")


def _type_name(t: Any) -> str:
    s = str(t)
    return "timestamp" if s.startswith("timestamp") else _TYPE_NAMES.get(s, s)


@dataclass
class Epoch:
    table: str
    start: str  # YYYY-MM-DD from the table name
    files: list[str]
    columns: dict[str, str]  # name -> type


@dataclass
class History:
    epochs: list[Epoch]
    changes: list[dict[str, Any]]  # each with the date of the epoch it starts
    identity: list[dict[str, int]]  # per epoch: column name -> identity (same across a rename)


class EvolutionAgent:
    """Answers ``{"changes": [...]}`` for change cases and ``{"value": n}`` for query cases."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self._histories: dict[str, History] = {}
        self._lock = threading.Lock()

    def __call__(self, case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        history = self._history(context, case["tables_prefix"])
        if case["kind"] == "changes":
            lo, hi = case["from"][:10], case["to"][:10]
            return {"changes": [c for c in history.changes if lo < c["date"] <= hi]}
        return {"value": self._query(history, case["query"], context)}

    # -- history ------------------------------------------------------------------------
    def _history(self, context: dict[str, Any], prefix: str) -> History:
        key = f"{context['dataset']['url']}|{prefix}"
        with self._lock:
            if key not in self._histories:
                self._histories[key] = self._build_history(context, prefix)
            return self._histories[key]

    def _build_history(self, context: dict[str, Any], prefix: str) -> History:
        root = Storage.from_url(context["dataset"]["url"])
        fs = dataset_filesystem(context)
        epochs = []
        for table in sorted(t for t in context["dataset"]["manifest"]["tables"] if t.startswith(prefix)):
            parts = context["dataset"]["manifest"]["tables"][table]["partitions"]
            with fs.open(root.path(parts[0]["path"]), "rb") as fh:
                schema = pq.read_schema(fh)
            suffix = table[len(prefix) :]
            files = [root.path(p["path"]) if is_local(context) else root.uri(p["path"]) for p in parts]
            epochs.append(
                Epoch(table, f"{suffix[:4]}-{suffix[4:6]}-{suffix[6:8]}", files, {f.name: _type_name(f.type) for f in schema})
            )
        changes: list[dict[str, Any]] = []
        identity = [{name: i for i, name in enumerate(epochs[0].columns)}]
        next_id = len(epochs[0].columns)
        with duckdb.connect(config={"threads": 1}) as con:
            if not is_local(context):
                con.register_filesystem(fs)
            for b in range(1, len(epochs)):
                before, after = epochs[b - 1], epochs[b]
                gone = [c for c in before.columns if c not in after.columns]
                new = [c for c in after.columns if c not in before.columns]
                renames = self._renames(con, before, after, gone, new)
                ids = {}
                for name, typ in after.columns.items():
                    if name in before.columns:
                        ids[name] = identity[-1][name]
                        old = before.columns[name]
                        if old != typ:
                            kind = "widened" if (old, typ) in _WIDER else "type_changed"
                            changes.append({"kind": kind, "column": name, "from_type": old, "to_type": typ, "date": after.start})
                    elif name in renames:
                        ids[name] = identity[-1][renames[name]]
                        changes.append({"kind": "renamed", "column": name, "old_name": renames[name], "date": after.start})
                    else:
                        ids[name], next_id = next_id, next_id + 1
                        changes.append({"kind": "added", "column": name, "to_type": typ, "date": after.start})
                for name in gone:
                    if name not in renames.values():
                        changes.append(
                            {"kind": "dropped", "column": name, "from_type": before.columns[name], "date": after.start}
                        )
                identity.append(ids)
        return History(epochs, changes, identity)

    def _renames(
        self, con: duckdb.DuckDBPyConnection, before: Epoch, after: Epoch, gone: list[str], new: list[str]
    ) -> dict[str, str]:
        """new name -> old name for the pairs whose values look alike, best pairs first."""
        scored = []
        for old in gone:
            for name in new:
                if before.columns[old] == after.columns[name]:
                    s = _similarity(_profile(con, before, old), _profile(con, after, name))
                    if s is not None:
                        scored.append((s, old, name))
        out: dict[str, str] = {}
        for _, old, name in sorted(scored, reverse=True):
            if name not in out and old not in out.values():
                out[name] = old
        return out

    # -- queries ------------------------------------------------------------------------
    def _query(self, history: History, query: dict[str, Any], context: dict[str, Any]) -> float | int:
        target = _names_by_epoch(history, query["column"])
        conds = [(c, _names_by_epoch(history, c["column"])) for c in query.get("where") or []]
        types = {history.epochs[e].columns[n] for e, n in enumerate(target) if n is not None}
        integer = types <= {"int8", "int16", "int32", "int64"}
        value_cast = ("BIGINT" if integer else "DOUBLE") if query["aggregate"] == "sum" else "VARCHAR"
        casts = {"=": "VARCHAR", "between": "DOUBLE", "is true": "BOOLEAN", "is not null": "VARCHAR"}
        selects = []
        for e, epoch in enumerate(history.epochs):
            cols = [f"{_cast(target[e], value_cast)} AS v"]
            cols += [f"{_cast(names[e], casts[c['op']])} AS c{i}" for i, (c, names) in enumerate(conds)]
            selects.append(f"SELECT {', '.join(cols)}, order_ts FROM read_parquet({_list(epoch.files)})")
        where = ["v IS NOT NULL"]
        params: dict[str, Any] = {}
        for i, (c, _) in enumerate(conds):
            if c["op"] == "=":
                where.append(f"c{i} = $p{i}")
                params[f"p{i}"] = str(c["value"])
            elif c["op"] == "between":
                where.append(f"c{i} BETWEEN $lo{i} AND $hi{i}")
                params.update({f"lo{i}": c["low"], f"hi{i}": c["high"]})
            elif c["op"] == "is true":
                where.append(f"c{i}")
            else:
                where.append(f"c{i} IS NOT NULL")
        for key, op in (("from", ">="), ("to", "<")):
            if query.get(key):
                where.append(f"order_ts {op} ${key}")
                params[key] = datetime.fromisoformat(query[key][:10]).replace(tzinfo=UTC)
        agg = "SUM(v)" if query["aggregate"] == "sum" else "COUNT(*)"
        sql = f"SELECT {agg} FROM ({' UNION ALL '.join(selects)}) WHERE {' AND '.join(where)}"
        with duckdb.connect(config={"threads": 1}) as con:
            if not is_local(context):
                con.register_filesystem(dataset_filesystem(context))
            con.execute("SET TimeZone = 'UTC'")
            value = _one(con, sql, params)[0]
        if value is None:
            return 0
        return int(value) if integer or query["aggregate"] == "count" else float(value)


def _names_by_epoch(history: History, column: str) -> list[str | None]:
    """The name ``column`` (as last named) had in each epoch; None where the epoch lacks it."""
    for ids in reversed(history.identity):  # a dropped column: the last epoch that had it
        if column in ids:
            ident = ids[column]
            return [next((n for n, i in e.items() if i == ident), None) for e in history.identity]
    raise ValueError(f"no epoch has a column {column!r}")


def _cast(name: str | None, sql_type: str) -> str:
    return "NULL" if name is None else f'TRY_CAST("{name}" AS {sql_type})'


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> tuple[Any, ...]:
    """The one row of an aggregate query."""
    row = con.execute(sql, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from an aggregate query: {sql[:200]}")
    return row


def _list(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def _profile(con: duckdb.DuckDBPyConnection, epoch: Epoch, name: str) -> dict[str, Any]:
    typ, src, col = epoch.columns[name], f"read_parquet({_list(epoch.files)})", f'"{name}"'
    nulls = f"avg(CASE WHEN {col} IS NULL THEN 1.0 ELSE 0.0 END)"
    if typ in _NUMERIC:
        lo, hi, avg, null = _one(con, f"SELECT min({col}), max({col}), avg({col}), {nulls} FROM {src}")
        return {"kind": "number", "min": lo, "max": hi, "mean": avg, "nulls": null}
    if typ == "bool":
        true, null = _one(con, f"SELECT avg(CASE WHEN {col} THEN 1.0 ELSE 0.0 END), {nulls} FROM {src}")
        return {"kind": "bool", "true": true, "nulls": null}
    values = {r[0] for r in con.execute(f"SELECT DISTINCT CAST({col} AS VARCHAR) FROM {src} WHERE {col} IS NOT NULL").fetchall()}
    (null,) = _one(con, f"SELECT {nulls} FROM {src}")
    return {"kind": "text", "values": values, "nulls": null}


def _similarity(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """How alike two columns' values are, in [0, 1]; None when they are clearly different."""
    if a["kind"] != b["kind"] or abs((a["nulls"] or 0) - (b["nulls"] or 0)) > 0.05:
        return None
    if a["kind"] == "bool":
        d = abs((a["true"] or 0) - (b["true"] or 0))
        return None if d > 0.05 else 1 - d
    if a["kind"] == "text":
        union = a["values"] | b["values"]
        jaccard = len(a["values"] & b["values"]) / len(union) if union else 1.0
        return jaccard if jaccard >= 0.5 else None
    if a["min"] is None or b["min"] is None:
        return None
    span = max(a["max"] - a["min"], b["max"] - b["min"], 1e-9)
    d = max(abs(a["min"] - b["min"]), abs(a["max"] - b["max"]), abs(a["mean"] - b["mean"])) / span
    return None if d > 0.1 else 1 - d
