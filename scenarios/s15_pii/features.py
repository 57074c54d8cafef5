"""PII cells (S15): every cell of a table's PII-bearing columns, with the entities it holds.

params: ``columns``, a list of ``{"name", "style", "mix"}``. ``mix`` maps an entity or decoy
label (datasets/kinds_pii.py) to the share of the column's cells that hold one. ``style``:

- ``value``: a cell holds one labelled value, or a filler (``""``, ``n/a``, ...) otherwise;
- ``text``: a cell is a neutral sentence, plus up to two sentences each carrying a labelled
  value drawn from ``mix`` independently (so a cell may hold two entities).

The truth is each cell's text and labels, computed from (seed, table, column, row id) alone;
planting writes those texts into the table's placeholder columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets.features import register_feature_kind
from scenario_pipeline.datasets.hashing import mix64, stream_key
from scenario_pipeline.datasets.kinds_pii import (
    DECOYS,
    ENTITIES,
    carry,
    filler,
    make_value,
    neutral_sentence,
)
from scenario_pipeline.datasets.spec import DatasetSpec, FeatureSpec

_U32 = float(1 << 32)


@dataclass(frozen=True)
class PiiColumn:
    name: str
    values: tuple[str, ...]  # the cell text of row i
    labels: tuple[tuple[str, ...], ...]  # labels (entities and decoys) of the values planted in row i
    raw: tuple[tuple[str, ...], ...]  # the planted values of row i, in the order of labels

    def entity_rows(self, entity: str) -> list[int]:
        return [i for i, ls in enumerate(self.labels) if entity in ls]


@dataclass(frozen=True)
class PiiTable:
    table: str
    columns: tuple[PiiColumn, ...]

    def column(self, name: str) -> PiiColumn:
        return next(c for c in self.columns if c.name == name)

    def pii_values(self) -> set[str]:
        """Every raw planted PII value (decoys excluded)."""
        return {
            v
            for c in self.columns
            for ls, vs in zip(c.labels, c.raw, strict=True)
            for label, v in zip(ls, vs, strict=True)
            if label in ENTITIES
        }


def _draw(mix: dict[str, float], u: float) -> str | None:
    acc = 0.0
    for label, rate in mix.items():
        acc += rate
        if u < acc:
            return label
    return None


def build_column(spec_seed: int, table: str, col: dict, rows: int) -> PiiColumn:
    mix = col["mix"]
    unknown = set(mix) - set(ENTITIES) - set(DECOYS)
    if unknown:
        raise ValueError(f"column {col['name']}: unknown PII labels {sorted(unknown)}")
    ids = np.arange(rows, dtype=np.uint64)
    key = stream_key(spec_seed, "pii", table, col["name"])
    h1 = [int(x) for x in mix64(ids, key)]
    h2 = [int(x) for x in mix64(ids, key ^ 0x5A5A5A5A)]
    h3 = [int(x) for x in mix64(ids, key ^ 0x3C3C3C3C)]
    values: list[str] = []
    labels: list[tuple[str, ...]] = []
    raw: list[tuple[str, ...]] = []
    for i in range(rows):
        if col["style"] == "value":
            label = _draw(mix, (h1[i] & 0xFFFFFFFF) / _U32)
            if label is None:
                values.append(filler(h2[i]))
                labels.append(())
                raw.append(())
            else:
                v = make_value(label, h2[i])
                values.append(v)
                labels.append((label,))
                raw.append((v,))
        else:
            text, ls, vs = [neutral_sentence(h1[i] >> 40)], [], []
            for u_hash, v_hash in ((h1[i], h2[i]), (h3[i], h2[i] >> 7 ^ h3[i])):
                label = _draw(mix, (u_hash & 0xFFFFFFFF) / _U32)
                if label is not None:
                    v = make_value(label, v_hash)
                    text.append(carry(label, v))
                    ls.append(label)
                    vs.append(v)
            values.append(" ".join(text))
            labels.append(tuple(ls))
            raw.append(tuple(vs))
    return PiiColumn(col["name"], tuple(values), tuple(labels), tuple(raw))


@register_feature_kind("pii_table")
class PiiTableKind:
    def truth(self, spec: DatasetSpec, feature: FeatureSpec) -> PiiTable:
        rows = spec.table_records(feature.table)
        return PiiTable(feature.table, tuple(build_column(spec.seed, feature.table, c, rows) for c in feature.params["columns"]))

    def plant(self, tbl: pa.Table, spec: DatasetSpec, feature: FeatureSpec, truth: PiiTable, start: int, stop: int) -> pa.Table:
        for col in truth.columns:
            i = tbl.schema.get_field_index(col.name)
            tbl = tbl.set_column(i, col.name, pa.array(col.values[start:stop], type=pa.string()))
        return tbl
