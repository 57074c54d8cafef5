"""Needles: groups of records; every record of group g carries a token only group g has.

params: ``groups`` (default 1000), ``min_per_group`` (1), ``max_per_group`` (5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets.features import register_feature_kind
from scenario_pipeline.datasets.hashing import mix64, stream_key
from scenario_pipeline.datasets.spec import DatasetSpec, FeatureSpec


@dataclass(frozen=True)
class Needles:
    """Needle record ids (sorted), the group of each, and each group's token."""

    record_ids: np.ndarray  # int64, sorted, unique
    groups: np.ndarray  # int64, group of each record id
    tokens: tuple[str, ...]  # token of group g at index g

    def of_group(self, g: int) -> list[int]:
        return sorted(int(r) for r in self.record_ids[self.groups == g])

    def in_range(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.searchsorted(self.record_ids, [start, stop])
        return self.record_ids[lo:hi], self.groups[lo:hi]


@register_feature_kind("needles")
class NeedleKind:
    def truth(self, spec: DatasetSpec, feature: FeatureSpec) -> Needles:
        """Group g holds between min and max records; ties on a record go to the lower (g, j)."""
        groups = feature.params.get("groups", 1000)
        lo, hi = feature.params.get("min_per_group", 1), feature.params.get("max_per_group", 5)
        records = spec.table_records(feature.table)
        g = np.arange(groups, dtype=np.uint64)
        counts = lo + (mix64(g, stream_key(spec.seed, "needle-count", feature.table)) % np.uint64(hi - lo + 1)).astype(np.int64)
        group_of = np.repeat(np.arange(groups, dtype=np.int64), counts)
        slot = np.concatenate([np.arange(c) for c in counts]).astype(np.uint64)
        draw = group_of.astype(np.uint64) * np.uint64(1 << 20) + slot
        ids = (mix64(draw, stream_key(spec.seed, "needle-pos", feature.table)) % np.uint64(records)).astype(np.int64)
        unique_ids, first = np.unique(ids, return_index=True)  # first occurrence in (g, j) order wins
        token_hash = mix64(np.arange(groups, dtype=np.uint64), stream_key(spec.seed, "needle-token", feature.table, feature.column))
        tokens = tuple(f"zq{int(t):016x}" for t in token_hash)
        return Needles(unique_ids, group_of[first], tokens)

    def plant(self, tbl: pa.Table, spec: DatasetSpec, feature: FeatureSpec, truth: Needles, start: int, stop: int) -> pa.Table:
        ids, groups = truth.in_range(start, stop)
        if len(ids) == 0:
            return tbl
        col_i = tbl.schema.get_field_index(feature.column)
        column = tbl.column(col_i).combine_chunks()
        dictionary = column.dictionary.to_pylist()
        tokens = sorted({truth.tokens[g] for g in groups})
        token_index = {t: len(dictionary) + i for i, t in enumerate(tokens)}
        indices = column.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int32, copy=True)
        indices[ids - start] = [token_index[truth.tokens[g]] for g in groups]
        mask = column.indices.is_null().to_numpy(zero_copy_only=False).copy()
        mask[ids - start] = False
        new = pa.DictionaryArray.from_arrays(pa.array(indices, mask=mask if mask.any() else None), pa.array(dictionary + tokens, pa.string()))
        return tbl.set_column(col_i, feature.column, new)
