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
        token_hash = mix64(
            np.arange(groups, dtype=np.uint64), stream_key(spec.seed, "needle-token", feature.table, feature.column)
        )
        tokens = tuple(f"zq{int(t):016x}" for t in token_hash)
        return Needles(unique_ids, group_of[first], tokens)

    def plant(self, tbl: pa.Table, spec: DatasetSpec, feature: FeatureSpec, truth: Needles, start: int, stop: int) -> pa.Table:
        """Overwrite the needle rows' codes with their group's token, appended to the dictionary.

        Touches only the needle rows: one copy of the codes (and of the validity bits when
        there are nulls), no decode of the column.
        """
        ids, groups = truth.in_range(start, stop)
        if len(ids) == 0:
            return tbl
        col_i = tbl.schema.get_field_index(feature.column)
        column = tbl.column(col_i)
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        indices = column.indices
        if indices.offset:
            indices = pa.concat_arrays([indices])  # a fresh array starts at offset 0
        tokens = sorted({truth.tokens[g] for g in groups})
        base = len(column.dictionary)
        code_of = {t: base + i for i, t in enumerate(tokens)}
        width = np.int32 if base + len(tokens) > np.iinfo(indices.type.to_pandas_dtype()).max else indices.type.to_pandas_dtype()
        codes = np.frombuffer(indices.buffers()[1], dtype=indices.type.to_pandas_dtype(), count=len(indices)).astype(
            width, copy=True
        )
        pos = ids - start
        codes[pos] = [code_of[truth.tokens[g]] for g in groups]
        validity, nulls = None, 0
        if indices.null_count:
            bits = np.frombuffer(indices.buffers()[0], dtype=np.uint8, count=(len(indices) + 7) // 8).copy()
            was_null = (bits[pos >> 3] >> (pos & 7).astype(np.uint8)) & 1 == 0
            np.bitwise_or.at(bits, pos >> 3, (1 << (pos & 7)).astype(np.uint8))
            validity, nulls = pa.py_buffer(bits), indices.null_count - int(was_null.sum())
        new_indices = pa.Array.from_buffers(
            pa.from_numpy_dtype(width), len(codes), [validity, pa.py_buffer(codes)], null_count=nulls
        )
        dictionary = pa.concat_arrays([column.dictionary, pa.array(tokens, column.dictionary.type)])
        new = pa.DictionaryArray.from_arrays(new_indices, dictionary, safe=False)
        return tbl.set_column(col_i, feature.column, new)
