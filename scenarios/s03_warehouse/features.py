"""A warehouse catalog (S03): thousands of tables with columns, types, descriptions, row counts,
join keys and lineage, all a pure function of (seed, subjects, keys).

Every subject (``kelu tavo invoices`` of domain ``billing``) has three tables, one per layer:
``raw`` -> ``staging`` -> ``mart`` (two lineage edges), with the same key and attribute columns.
Some marts also read another subject's staging table (an extra lineage edge). Each subject has
1-3 entity keys (``<word>_id``) out of ``keys``; tables sharing a key join on it. Subject word
pairs are unique, so a subject phrase names exactly three tables, one per layer.

The feature is planted into each of the catalog's three tables (``params.part``: ``tables``,
``columns`` or ``lineage``): plant overwrites the placeholder columns with the catalog rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets.columns import vocabulary
from scenario_pipeline.datasets.features import register_feature_kind
from scenario_pipeline.datasets.hashing import mix64, stream_key
from scenario_pipeline.datasets.spec import DatasetSpec, FeatureSpec

LAYERS = ("raw", "staging", "mart")
LAYER_TEXT = {"raw": "Raw extract of", "staging": "Cleaned staging copy of", "mart": "Curated mart of"}
DOMAINS = {
    "sales": ("orders", "quotes", "returns"),
    "billing": ("invoices", "payments", "refunds"),
    "marketing": ("campaigns", "leads", "touches"),
    "inventory": ("stock", "bins", "counts"),
    "logistics": ("shipments", "routes", "parcels"),
    "support": ("tickets", "calls", "surveys"),
    "product": ("releases", "features", "bundles"),
    "web": ("sessions", "pageviews", "clicks"),
    "finance": ("ledgers", "budgets", "accruals"),
    "people": ("hires", "reviews", "timesheets"),
    "risk": ("alerts", "cases", "scores"),
    "partners": ("contracts", "referrals", "payouts"),
}
ATTRIBUTES = (
    ("amount", "DECIMAL(18,2)", "Dollar amount of {w} per {n}"),
    ("at", "TIMESTAMP", "Time of the {w} event of each {n}"),
    ("date", "DATE", "Calendar date of the {w} of each {n}"),
    ("flag", "BOOLEAN", "True when the {w} check of a {n} passed"),
    ("code", "VARCHAR", "The {w} code of each {n}"),
    ("count", "BIGINT", "Number of {w} items per {n}"),
    ("name", "VARCHAR", "Name of the {w} of each {n}"),
    ("rate", "DOUBLE", "The {w} ratio of each {n}"),
)
SUBJECT_WORDS = 256  # subject word pairs: up to 65,536 subjects
MAX_SUBJECTS = SUBJECT_WORDS * SUBJECT_WORDS


@dataclass(frozen=True)
class CatalogColumn:
    name: str
    data_type: str
    description: str
    is_key: bool


@dataclass(frozen=True)
class CatalogTable:
    name: str  # qualified: layer.short_name
    layer: str
    domain: str
    subject: int
    phrase: str  # "kelu tavo invoices": names the subject in questions
    description: str
    row_count: int
    columns: tuple[CatalogColumn, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.is_key)


@dataclass(frozen=True)
class Catalog:
    tables: tuple[CatalogTable, ...]  # subject s has tables 3s (raw), 3s+1 (staging), 3s+2 (mart)
    lineage: tuple[tuple[str, str, str], ...]  # (upstream, downstream, transform)
    subject_keys: tuple[tuple[str, ...], ...]

    def mart(self, subject: int) -> CatalogTable:
        return self.tables[3 * subject + 2]

    @property
    def column_rows(self) -> int:
        return sum(len(t.columns) for t in self.tables)

    def render(self) -> str:
        """The whole catalog as text, one line per table, column and lineage edge (S03's 'catalog tokens')."""
        out = []
        for t in self.tables:
            out.append(f"{t.name} ({t.row_count} rows): {t.description}\n")
            out.extend(f"  {c.name} {c.data_type}{' key' if c.is_key else ''}: {c.description}\n" for c in t.columns)
        out.extend(f"{up} -> {down}: {how}\n" for up, down, how in self.lineage)
        return "".join(out)


_MASK = (1 << 64) - 1


def splitmix64_scalars(key: int, *values: int) -> int:
    """splitmix64 folded over a few scalars in plain Python: the catalog draws ~30 numbers per subject.

    Not datasets/hashing.py ``mix64_scalars``: a different mix, different numbers (the catalog's are pinned)."""
    x = key & _MASK
    for v in values:
        z = (x + (v + 0x9E3779B97F4A7C15) * 0x9E3779B97F4A7C15) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        x = z ^ (z >> 31)
    return x


def _pick(h: int, n: int) -> int:
    return h % n


@lru_cache(maxsize=8)
def build_catalog(seed: int, subjects: int, keys: int) -> Catalog:
    """The catalog for (seed, subjects, keys); the same on every machine."""
    if not 1 <= subjects <= MAX_SUBJECTS:
        raise ValueError(f"subjects must be 1..{MAX_SUBJECTS}, got {subjects}")
    words = vocabulary(7225)
    order = np.argsort(mix64(np.arange(len(words), dtype=np.uint64), stream_key(seed, "catalog-words")), kind="stable")
    subject_words = [words[i] for i in order[:SUBJECT_WORDS]]
    key_words = [words[i] for i in order[SUBJECT_WORDS : SUBJECT_WORDS + keys]]
    attr_words = [words[i] for i in order[SUBJECT_WORDS + keys : SUBJECT_WORDS + keys + 512]]
    key_names = [f"{w}_id" for w in key_words]
    k = stream_key(seed, "catalog")
    a = (splitmix64_scalars(k, 1) | 1) % MAX_SUBJECTS  # odd: a bijection on pair numbers
    b = splitmix64_scalars(k, 2) % MAX_SUBJECTS
    domains = list(DOMAINS)
    tables: list[CatalogTable] = []
    lineage: list[tuple[str, str, str]] = []
    subject_keys: list[tuple[str, ...]] = []
    for s in range(subjects):
        pair = (a * s + b) % MAX_SUBJECTS
        w1, w2 = subject_words[pair // SUBJECT_WORDS], subject_words[pair % SUBJECT_WORDS]
        domain = domains[_pick(splitmix64_scalars(k, 3, s), len(domains))]
        noun = DOMAINS[domain][_pick(splitmix64_scalars(k, 4, s), 3)]
        n_keys = 1 + _pick(splitmix64_scalars(k, 5, s), 3)
        chosen: list[str] = []
        j = 0
        while len(chosen) < min(n_keys, keys):
            name = key_names[_pick(splitmix64_scalars(k, 6, s, j), keys)]
            if name not in chosen:
                chosen.append(name)
            j += 1
        subject_keys.append(tuple(chosen))
        cols = [
            CatalogColumn(name, "BIGINT", f"Identifier of a {name[:-3]}; tables that share it join on it", True)
            for name in chosen
        ]
        n_attr = 3 + _pick(splitmix64_scalars(k, 7, s), 10)
        seen = set(chosen)
        for j in range(n_attr):
            word = attr_words[_pick(splitmix64_scalars(k, 8, s, j), len(attr_words))]
            suffix, typ, text = ATTRIBUTES[_pick(splitmix64_scalars(k, 9, s, j), len(ATTRIBUTES))]
            name = f"{word}_{suffix}"
            if name not in seen:
                seen.add(name)
                cols.append(CatalogColumn(name, typ, text.format(w=word, n=noun[:-1] if noun.endswith("s") else noun), False))
        phrase = f"{w1} {w2} {noun}"
        short = f"{domain}_{w1}_{w2}_{noun}"
        for li, layer in enumerate(LAYERS):
            rows = int(10 ** (3 + 6 * (splitmix64_scalars(k, 10, s, li) % 10_000) / 10_000))
            extra = (CatalogColumn("ingested_at", "TIMESTAMP", "When the row was loaded", False),) if layer == "raw" else ()
            tables.append(
                CatalogTable(
                    f"{layer}.{short}",
                    layer,
                    domain,
                    s,
                    phrase,
                    f"{LAYER_TEXT[layer]} {phrase} for the {domain} team.",
                    rows,
                    tuple(cols) + extra,
                )
            )
        lineage.append((tables[-3].name, tables[-2].name, "cleans and deduplicates"))
        lineage.append((tables[-2].name, tables[-1].name, "models for analysis"))
    for s in range(subjects):  # some marts also read another subject's staging table
        if subjects > 1 and splitmix64_scalars(k, 11, s) % 4 == 0:
            other = _pick(splitmix64_scalars(k, 12, s), subjects)
            if other != s:
                lineage.append((tables[3 * other + 1].name, tables[3 * s + 2].name, "enriches"))
    return Catalog(tuple(tables), tuple(lineage), tuple(subject_keys))


def catalog_of(spec: DatasetSpec, feature: FeatureSpec) -> Catalog:
    return build_catalog(spec.seed, feature.params["subjects"], feature.params["keys"])


def _rows(catalog: Catalog, part: str) -> dict[str, list]:
    if part == "tables":
        ts = catalog.tables
        return {
            "schema_name": [t.layer for t in ts],
            "table_name": [t.name for t in ts],
            "description": [t.description for t in ts],
            "row_count": [t.row_count for t in ts],
            "domain": [t.domain for t in ts],
        }
    if part == "columns":
        pairs = [(t, c) for t in catalog.tables for c in t.columns]
        return {
            "table_name": [t.name for t, _ in pairs],
            "column_name": [c.name for _, c in pairs],
            "data_type": [c.data_type for _, c in pairs],
            "description": [c.description for _, c in pairs],
            "is_key": [c.is_key for _, c in pairs],
        }
    if part == "lineage":
        return {
            "upstream": [e[0] for e in catalog.lineage],
            "downstream": [e[1] for e in catalog.lineage],
            "transform": [e[2] for e in catalog.lineage],
        }
    raise ValueError(f"unknown catalog part {part!r}")


_TYPES = {"row_count": pa.int64(), "is_key": pa.bool_()}


@register_feature_kind("warehouse_catalog")
class WarehouseCatalogKind:
    def truth(self, spec: DatasetSpec, feature: FeatureSpec) -> Catalog:
        return catalog_of(spec, feature)

    def plant(self, tbl: pa.Table, spec: DatasetSpec, feature: FeatureSpec, truth: Catalog, start: int, stop: int) -> pa.Table:
        for name, values in _rows(truth, feature.params["part"]).items():
            i = tbl.schema.get_field_index(name)
            tbl = tbl.set_column(i, name, pa.array(values[start:stop], type=_TYPES.get(name, pa.string())))
        return tbl


def part_rows(catalog: Catalog, part: str) -> int:
    return len(next(iter(_rows(catalog, part).values())))
