"""The oracle: what a spec planted, enumerated from the spec alone, never from the data.

Scorers use it; agents must never import it (a test enforces that for reference agents).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from scenario_pipeline.datasets.hashing import mix64, stream_key
from scenario_pipeline.datasets.spec import DatasetSpec, NeedleFeature


@dataclass(frozen=True)
class Needles:
    """Needle record ids (sorted), the group of each, and each group's token."""

    feature: NeedleFeature
    record_ids: np.ndarray  # int64, sorted, unique
    groups: np.ndarray  # int64, group of each record id
    tokens: tuple[str, ...]  # token of group g at index g

    def of_group(self, g: int) -> list[int]:
        return sorted(int(r) for r in self.record_ids[self.groups == g])

    def in_range(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.searchsorted(self.record_ids, [start, stop])
        return self.record_ids[lo:hi], self.groups[lo:hi]


def needle_token(seed: int, feature: NeedleFeature, g: int) -> str:
    return f"zq{int(mix64(np.array([g], np.uint64), stream_key(seed, 'needle-token', feature.table, feature.column))[0]):016x}"


@lru_cache(maxsize=32)
def needles(spec: DatasetSpec, index: int = 0) -> Needles:
    """Needle group g holds between min and max records; ties on a record go to the lower (g, j)."""
    feature = spec.features_of("needles")[index]
    assert isinstance(feature, NeedleFeature)
    g = np.arange(feature.groups, dtype=np.uint64)
    span = feature.max_per_group - feature.min_per_group + 1
    counts = feature.min_per_group + (mix64(g, stream_key(spec.seed, "needle-count", feature.table)) % np.uint64(span)).astype(np.int64)
    group_of = np.repeat(np.arange(feature.groups, dtype=np.int64), counts)
    slot = np.concatenate([np.arange(c) for c in counts]).astype(np.uint64)
    draw = group_of.astype(np.uint64) * np.uint64(1 << 20) + slot
    ids = (mix64(draw, stream_key(spec.seed, "needle-pos", feature.table)) % np.uint64(spec.records)).astype(np.int64)
    unique_ids, first = np.unique(ids, return_index=True)  # first occurrence in (g, j) order wins
    tokens = tuple(needle_token(spec.seed, feature, i) for i in range(feature.groups))
    return Needles(feature, unique_ids, group_of[first], tokens)
