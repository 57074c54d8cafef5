"""S02 multi-source conflicts: one set of customers described by a CRM, billing and support.

Every source describes every customer (record id = customer id). By default the sources agree:
column kind ``s02_attr`` computes an attribute from the customer id alone, whatever the table.
Feature kind ``s02_conflicts`` then plants disagreements in chosen fields of chosen customers,
with planted ``updated_at`` times so the resolution rule (trust tiers, then recency) has one
answer, and cosmetic variants (case, spacing) beside them that are not conflicts.

One ``s02_conflicts`` feature per source table, all with the same params (so each plants its
own source's side of the same truth): ``seed`` (the attribute seed, the same the columns use),
``conflict_rate`` (0.08), ``cosmetic_rate`` (0.04), ``two_field_share`` (0.3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scenario_pipeline.datasets.columns import null_mask, register_column_kind
from scenario_pipeline.datasets.features import register_feature_kind
from scenario_pipeline.datasets.hashing import mix64, stream_key
from scenario_pipeline.datasets.spec import ColumnSpec, DatasetSpec, FeatureSpec

SOURCES = ("crm", "billing", "support")
KEY_COLUMN = "customer_id"
UPDATED_COLUMN = "updated_at"
# field -> the column that holds it in each source that has it
FIELD_COLUMNS: dict[str, dict[str, str]] = {
    "email": {"crm": "email", "billing": "billing_email", "support": "contact_email"},
    "address": {"crm": "address", "billing": "billing_address"},
    "plan": {"crm": "plan", "billing": "plan_code", "support": "plan"},
    "mrr": {"crm": "mrr", "billing": "monthly_amount"},
}
# The documented resolution rule: the first tier with a non-null value decides; within a tier
# the most recently updated source wins.
TRUST: dict[str, list[list[str]]] = {
    "email": [["crm", "support"], ["billing"]],
    "address": [["billing"], ["crm"]],
    "plan": [["billing"], ["crm"], ["support"]],
    "mrr": [["billing"], ["crm"]],
}
STRING_FIELDS = ("email", "address", "plan")

_FIRST = (
    "ann",
    "ben",
    "cara",
    "dev",
    "eli",
    "fay",
    "gus",
    "hana",
    "ivo",
    "jo",
    "kai",
    "lena",
    "max",
    "nia",
    "omar",
    "pia",
    "quin",
    "rosa",
    "sam",
    "tara",
    "uma",
    "vic",
    "wes",
    "xena",
    "yuri",
    "zoe",
)
_LAST = (
    "adams",
    "baker",
    "chen",
    "diaz",
    "evans",
    "fox",
    "garcia",
    "hill",
    "ito",
    "jones",
    "khan",
    "lopez",
    "moore",
    "nagy",
    "olsen",
    "patel",
    "quinn",
    "reyes",
    "silva",
    "tran",
    "ueda",
    "vance",
    "wong",
    "young",
    "zhou",
)
_DOMAINS = ("example.com", "mail.test", "inbox.test", "corp.test", "post.test", "web.test", "fast.test", "home.test")
_STREETS = (
    "oak",
    "elm",
    "pine",
    "maple",
    "cedar",
    "birch",
    "lake",
    "hill",
    "park",
    "river",
    "mill",
    "church",
    "spring",
    "north",
    "south",
    "west",
)
_SUFFIXES = ("st", "ave", "rd", "ln", "way", "blvd")
_CITIES = ("springfield", "riverton", "fairview", "greenville", "madison", "salem", "georgetown", "franklin")
PLANS = ("free", "starter", "pro", "enterprise")
_UPDATED_START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
_UPDATED_SPAN_US = 1000 * 86_400 * 1_000_000
_DAY_US = 86_400 * 1_000_000


def normalize(field_name: str, value: Any) -> Any:
    """The documented comparison form: strings trimmed, spaces collapsed, case folded; amounts to cents."""
    if value is None:
        return None
    if field_name == "mrr":
        return round(float(value), 2)
    return " ".join(str(value).split()).casefold()


def _h(seed: int, field_name: str, ids: np.ndarray, variant: int = 0) -> np.ndarray:
    return mix64(np.asarray(ids, dtype=np.uint64), stream_key(seed, "s02", field_name, variant))


def attribute_values(field_name: str, seed: int, ids: np.ndarray, variant: int = 0) -> list[Any]:
    """The value of ``field_name`` for customers ``ids``: variant 0 is the agreed value; variants
    1 and 2 are alternatives that differ from it (and from each other) after normalization."""
    h = _h(seed, field_name, ids)  # the same draw for every variant: variants shift one part of it
    k = np.uint64(variant)
    if field_name == "email":
        first, last = h % np.uint64(len(_FIRST)), (h >> np.uint64(8)) % np.uint64(len(_LAST))
        num, dom = (h >> np.uint64(16)) % np.uint64(100), ((h >> np.uint64(24)) + k) % np.uint64(len(_DOMAINS))
        return [f"{_FIRST[a]}.{_LAST[b]}{n}@{_DOMAINS[d]}" for a, b, n, d in zip(first, last, num, dom, strict=True)]
    if field_name == "address":
        num = 1 + (h % np.uint64(9000)) + k * np.uint64(17)
        street, suffix = (h >> np.uint64(16)) % np.uint64(len(_STREETS)), (h >> np.uint64(24)) % np.uint64(len(_SUFFIXES))
        city = (h >> np.uint64(32)) % np.uint64(len(_CITIES))
        return [f"{n} {_STREETS[s]} {_SUFFIXES[x]}, {_CITIES[c]}" for n, s, x, c in zip(num, street, suffix, city, strict=True)]
    if field_name == "plan":
        return [PLANS[int(p)] for p in ((h % np.uint64(len(PLANS))) + k) % np.uint64(len(PLANS))]
    if field_name == "mrr":
        base = 10.0 + (h % np.uint64(199_000)).astype(np.float64) / 100.0
        return [round(float(v), 2) for v in base + 12.5 * variant]
    raise ValueError(f"unknown S02 field {field_name!r}")


def cosmetic_variant(field_name: str, value: str) -> str:
    """The same value written differently: not a conflict under ``normalize``."""
    if field_name == "email":
        local, _, domain = value.partition("@")
        return f" {local.title()}@{domain.upper()}"
    if field_name == "address":
        return value.upper().replace(" ", "  ", 1)
    return value.capitalize() + " "


@register_column_kind("s02_attr")
def _attr(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    """An agreed customer attribute (params ``field``, ``seed``); nulls are per source."""
    name = col.params["field"]
    values = attribute_values(name, col.params["seed"], ids)
    typ = pa.float64() if name == "mrr" else pa.string()
    return pa.array(values, type=typ, mask=null_mask(col, h))


@register_column_kind("s02_updated")
def _updated(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    """When a source last updated a customer: uniform over 1,000 days from 2024-01-01, per source."""
    return pa.array(_UPDATED_START + (h % np.uint64(_UPDATED_SPAN_US)).astype(np.int64), type=pa.timestamp("us", tz="UTC"))


# -- the planted truth ------------------------------------------------------------------

# Value patterns per field: the variant each source holds (None: the source's value is null).
_PATTERNS: dict[str, list[tuple[str, dict[str, int | None]]]] = {
    "email": [
        ("tie-by-recency", {"crm": 0, "support": 1, "billing": 0}),
        ("tie-by-recency", {"crm": 1, "support": 0, "billing": 0}),
        ("trust-over-majority", {"crm": 0, "support": 0, "billing": 1}),
        ("null-in-top-tier", {"crm": None, "support": 0, "billing": 1}),
        ("three-way", {"crm": 0, "support": 1, "billing": 2}),
    ],
    "address": [("trust", {"billing": 0, "crm": 1}), ("trust", {"billing": 1, "crm": 0})],
    "plan": [
        ("trust-over-majority", {"billing": 0, "crm": 1, "support": 1}),
        ("null-in-top-tier", {"billing": None, "crm": 0, "support": 1}),
        ("trust", {"billing": 1, "crm": 0, "support": 0}),
    ],
    "mrr": [("trust", {"billing": 0, "crm": 1}), ("trust", {"billing": 1, "crm": 0})],
}
_FIELDS = tuple(FIELD_COLUMNS)


@dataclass(frozen=True)
class PlantedConflict:
    entity_id: int
    field: str
    pattern: str
    values: dict[str, Any]  # source -> raw value (None: null)
    resolved: Any


@dataclass(frozen=True)
class Conflicts:
    """Conflicted customers (sorted), their conflicts and planted update times, and cosmetic variants."""

    entity_ids: np.ndarray
    by_entity: dict[int, list[PlantedConflict]]
    updated: dict[int, dict[str, int]]  # entity -> source -> updated_at (microseconds, UTC)
    cosmetic_ids: np.ndarray
    cosmetic: dict[int, tuple[str, str, str]]  # entity -> (field, source, raw value)
    records: int = 0
    conflicts: list[PlantedConflict] = field(default_factory=list)


def resolve(field_name: str, values: dict[str, Any], updated: dict[str, int]) -> Any:
    """The documented rule: the first trust tier with a non-null value; in it, the latest update."""
    for tier in TRUST[field_name]:
        candidates = [s for s in tier if values.get(s) is not None]
        if candidates:
            return values[max(candidates, key=lambda s: updated[s])]
    return None


def _draw_ids(n: int, records: int, key: int) -> np.ndarray:
    return np.unique(mix64(np.arange(n, dtype=np.uint64), key) % np.uint64(records)).astype(np.int64)


@register_feature_kind("s02_conflicts")
class ConflictKind:
    def truth(self, spec: DatasetSpec, feature: FeatureSpec) -> Conflicts:
        # The three sources' features share one truth: computed once per process.
        return _truth(json.dumps(feature.params, sort_keys=True), spec.table_records(feature.table))

    def plant(self, tbl: pa.Table, spec: DatasetSpec, feature: FeatureSpec, truth: Conflicts, start: int, stop: int) -> pa.Table:
        source = feature.table  # one feature per source table, all with the same params
        edits: dict[str, dict[int, Any]] = {}
        lo, hi = np.searchsorted(truth.entity_ids, [start, stop])
        for eid in truth.entity_ids[lo:hi].tolist():
            edits.setdefault(UPDATED_COLUMN, {})[eid - start] = truth.updated[eid][source]
            for c in truth.by_entity[eid]:
                column = FIELD_COLUMNS[c.field].get(source)
                if column is not None:
                    edits.setdefault(column, {})[eid - start] = c.values[source]
        lo, hi = np.searchsorted(truth.cosmetic_ids, [start, stop])
        for eid in truth.cosmetic_ids[lo:hi].tolist():
            name, src, raw = truth.cosmetic[eid]
            if src == source:
                edits.setdefault(FIELD_COLUMNS[name][source], {})[eid - start] = raw
        for column, rows in edits.items():
            i = tbl.schema.get_field_index(column)
            arr = tbl.column(i).combine_chunks()
            positions = sorted(rows)
            mask = np.zeros(len(arr), dtype=bool)
            mask[positions] = True
            replacement = pa.array([rows[r] for r in positions], type=arr.type)
            tbl = tbl.set_column(i, column, pc.replace_with_mask(arr, pa.array(mask), replacement))
        return tbl


@lru_cache(maxsize=4)
def _truth(params_json: str, records: int) -> Conflicts:
    p = json.loads(params_json)
    seed = p["seed"]
    conflicted = _draw_ids(max(1, round(records * p.get("conflict_rate", 0.08))), records, stream_key(seed, "s02-conflicted"))
    cosmetic = np.setdiff1d(
        _draw_ids(max(1, round(records * p.get("cosmetic_rate", 0.04))), records, stream_key(seed, "s02-cosmetic")), conflicted
    )
    two_share = int(p.get("two_field_share", 0.3) * 1000)
    choice = mix64(conflicted.astype(np.uint64), stream_key(seed, "s02-choice"))
    by_entity: dict[int, list[PlantedConflict]] = {}
    updated: dict[int, dict[str, int]] = {}
    all_conflicts: list[PlantedConflict] = []
    for eid, c in zip(conflicted.tolist(), choice.tolist(), strict=True):
        # Distinct update times in a random order of the sources, days apart.
        order = sorted(SOURCES, key=lambda s: mix64(np.array([eid], dtype=np.uint64), stream_key(seed, "s02-order", s))[0])
        base_day = (c >> 20) % 600
        updated[eid] = {
            s: _UPDATED_START + (base_day + 30 * (i + 1) + (c >> (8 * i)) % 20) * _DAY_US + (c % 86_400) * 1_000_000
            for i, s in enumerate(order)
        }
        n_fields = 2 if (c >> 40) % 1000 < two_share else 1
        first = (c >> 10) % len(_FIELDS)
        fields = [_FIELDS[(first + j) % len(_FIELDS)] for j in range(n_fields)]
        planted = []
        for j, name in enumerate(fields):
            pattern, variants = _PATTERNS[name][((c >> (50 + 4 * j)) % 16) % len(_PATTERNS[name])]
            values = {s: None if v is None else attribute_values(name, seed, np.array([eid]), v)[0] for s, v in variants.items()}
            planted.append(PlantedConflict(eid, name, pattern, values, resolve(name, values, updated[eid])))
        by_entity[eid] = planted
        all_conflicts.extend(planted)
    cos_choice = mix64(cosmetic.astype(np.uint64), stream_key(seed, "s02-cosmetic-choice"))
    cosmetic_map: dict[int, tuple[str, str, str]] = {}
    for eid, c in zip(cosmetic.tolist(), cos_choice.tolist(), strict=True):
        name = STRING_FIELDS[c % len(STRING_FIELDS)]
        sources = tuple(FIELD_COLUMNS[name])
        source = sources[(c >> 8) % len(sources)]
        cosmetic_map[eid] = (name, source, cosmetic_variant(name, attribute_values(name, seed, np.array([eid]))[0]))
    return Conflicts(conflicted, by_entity, updated, cosmetic, cosmetic_map, records, all_conflicts)
