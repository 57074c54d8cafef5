"""S13 cross-asset insights: assets (tables) joined by entity, many numeric measures, a few true
relationships planted among independent ones.

Column kinds: ``s13_measure`` (an independent normal measure, ``mu + sd * z``) and ``s13_group``
(a categorical column, uniform over its levels); both draw from their own keys, so the planter
can recompute them. Feature kind ``s13_relationships`` (one per asset table, same params) plants a
latent factor model: each cluster has a factor ``f`` and members in two assets; a member becomes
``mu + sd * (a * f + sqrt(1 - a^2) * z)``. A group column of one of a cluster's assets
may shift the cluster's factor by ``delta`` on one level. Measures outside the clusters stay independent of everything, so every
pair the truth does not name has correlation exactly zero, and the population effect sizes of
the named ones follow from the loadings in closed form.

params: ``seed``, ``assets`` ({asset: [measure, ...]}), ``groups`` ({asset: [column, levels...]}),
``clusters`` (4), ``members`` (4 per asset of a cluster), ``group_effects`` (3).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets.columns import register_column_kind
from scenario_pipeline.datasets.features import register_feature_kind
from scenario_pipeline.datasets.hashing import mix64, stream_key
from scenario_pipeline.datasets.spec import ColumnSpec, DatasetSpec, FeatureSpec


def standard_normal(seed: int, ids: np.ndarray, *stream: object) -> np.ndarray:
    """Independent N(0, 1) draws per id (Box-Muller on two 26-bit halves of one hash)."""
    h = mix64(np.asarray(ids).astype(np.uint64), stream_key(seed, "s13", *stream))
    u1 = ((h >> np.uint64(38)).astype(np.float64) + 0.5) / float(1 << 26)
    u2 = ((h & np.uint64((1 << 26) - 1)).astype(np.float64) + 0.5) / float(1 << 26)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)


def group_codes(seed: int, asset: str, levels: int, ids: np.ndarray) -> np.ndarray:
    return (mix64(np.asarray(ids).astype(np.uint64), stream_key(seed, "s13", asset, "group")) % np.uint64(levels)).astype(np.int8)


@register_column_kind("s13_measure", hashed=False)
def _measure(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    """params: ``seed``, ``asset``, ``mu``, ``sd``."""
    p = col.params
    return pa.array(p["mu"] + p["sd"] * standard_normal(p["seed"], ids, p["asset"], col.name), pa.float64())


@register_column_kind("s13_group", hashed=False)
def _group(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    """params: ``seed``, ``asset``, ``levels`` (the values)."""
    p = col.params
    codes = group_codes(p["seed"], p["asset"], len(p["levels"]), ids)
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(p["levels"], pa.string()))


@dataclass(frozen=True)
class Member:
    asset: str
    measure: str
    loading: float


@dataclass(frozen=True)
class Cluster:
    index: int
    members: tuple[Member, ...]
    group: tuple[str, str, int, int, float] | None  # (asset, column, level index, levels, delta)

    @property
    def factor_variance(self) -> float:
        if self.group is None:
            return 1.0
        p = 1.0 / self.group[3]
        return 1.0 + p * (1.0 - p) * self.group[4] ** 2


@dataclass(frozen=True)
class Relationships:
    clusters: tuple[Cluster, ...]
    seed: int

    def cluster_of(self, name: str) -> Cluster | None:
        for c in self.clusters:
            if any(f"{m.asset}.{m.measure}" == name for m in c.members):
                return c
        return None

    def partners(self, name: str) -> dict[str, tuple[str, float]]:
        """Every variable truly related to measure ``name``: other name -> (test, population effect
        size): Pearson r for a measure, eta squared for a group column."""
        c = self.cluster_of(name)
        if c is None:
            return {}
        v = c.factor_variance
        me = next(m for m in c.members if f"{m.asset}.{m.measure}" == name)
        var_me = me.loading**2 * v + 1 - me.loading**2
        out = {}
        for m in c.members:
            if m is me:
                continue
            var_m = m.loading**2 * v + 1 - m.loading**2
            out[f"{m.asset}.{m.measure}"] = ("pearson", me.loading * m.loading * v / math.sqrt(var_me * var_m))
        if c.group is not None:
            asset, column, _, levels, delta = c.group
            p = 1.0 / levels
            out[f"{asset}.{column}"] = ("anova", me.loading**2 * p * (1 - p) * delta**2 / var_me)
        return out


def plan_relationships(params: dict[str, Any]) -> Relationships:
    return _plan(json.dumps(params, sort_keys=True))


@lru_cache(maxsize=8)
def _plan(key: str) -> Relationships:
    p = json.loads(key)
    seed, assets = p["seed"], p["assets"]
    names = sorted(assets)
    h = mix64(np.arange(256, dtype=np.uint64), stream_key(seed, "s13-plan")).tolist()
    # Cluster c lives in two assets; no asset hosts more than two clusters.
    load = {a: 0 for a in names}
    free = {a: list(assets[a]) for a in names}
    for a in names:  # a seeded order of each asset's measures
        free[a].sort(key=lambda m: mix64(np.array([0], dtype=np.uint64), stream_key(seed, "s13-order", a, m))[0])
    clusters: list[list[Any]] = []  # [cluster, members, group effect]: the effect is set below
    k = 0
    for c in range(p.get("clusters", 4)):
        # the two least-loaded assets with room (ties in a seeded order)
        order = sorted(names, key=lambda a: (load[a], h[(k + names.index(a)) % len(h)]))
        k += len(names)
        pair = [a for a in order if load[a] < 2 and len(free[a]) >= p.get("members", 4)][:2]
        if len(pair) < 2:
            raise ValueError("S13: too few assets or measures for the planted clusters")
        members = []
        for a in pair:
            load[a] += 1
            for _ in range(p.get("members", 4)):
                members.append(Member(a, free[a].pop(0), 0.4 + 0.4 * (h[k % len(h)] % 1000) / 1000))
                k += 1
        clusters.append([c, tuple(members), None])
    # A group column of one of the cluster's own assets shifts the cluster's factor; a group
    # column shifts one cluster at most (two would correlate their factors).
    used: set[str] = set()
    for j in range(min(p.get("group_effects", 3), len(clusters))):
        pair = sorted({m.asset for m in clusters[j][1]}, key=lambda a: h[200 + names.index(a)])
        free_assets = [a for a in pair if a not in used]
        if not free_assets:
            continue
        a = free_assets[0]
        used.add(a)
        column, *levels = p["groups"][a]
        clusters[j][2] = (a, column, h[210 + j] % len(levels), len(levels), 0.6 + 0.4 * (h[220 + j] % 1000) / 1000)
    return Relationships(tuple(Cluster(c, m, g) for c, m, g in clusters), seed)


def factor(rel: Relationships, cluster: Cluster, ids: np.ndarray) -> np.ndarray:
    """The cluster's latent factor per entity, shifted by its group effect."""
    f = standard_normal(rel.seed, ids, "factor", cluster.index)
    if cluster.group is not None:
        asset, _, level, levels, delta = cluster.group
        f = f + delta * (group_codes(rel.seed, asset, levels, ids) == level)
    return f


@register_feature_kind("s13_relationships")
class RelationshipKind:
    def truth(self, spec: DatasetSpec, feature: FeatureSpec) -> Relationships:
        return plan_relationships(feature.params)

    def plant(
        self, tbl: pa.Table, spec: DatasetSpec, feature: FeatureSpec, truth: Relationships, start: int, stop: int
    ) -> pa.Table:
        asset = feature.table
        ids = np.arange(start, stop, dtype=np.int64)
        for c in truth.clusters:
            mine = [m for m in c.members if m.asset == asset]
            if not mine:
                continue
            f = factor(truth, c, ids)
            for m in mine:
                i = tbl.schema.get_field_index(m.measure)
                cp = spec.table(asset).column(m.measure).params
                z = standard_normal(truth.seed, ids, asset, m.measure)
                values = cp["mu"] + cp["sd"] * (m.loading * f + math.sqrt(1 - m.loading**2) * z)
                tbl = tbl.set_column(i, m.measure, pa.array(values, pa.float64()))
        return tbl
