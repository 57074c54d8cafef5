"""Reference agent for S13: test every candidate, then keep what Benjamini-Hochberg keeps at q.

Each asset table is read once per dataset (Parquet through pyarrow) and joined to the case's
measure on the entity key. A measure against a measure: Pearson's r with its two-sided t-test;
a measure against a group column: one-way ANOVA, effect size eta squared. The family is every
candidate of the case; the step-up procedure at the case's q decides the claims.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from scipy import stats

from scenario_pipeline.agents.reference.dataset_access import dataset_filesystem
from scenario_pipeline.storage import Storage


def benjamini_hochberg(p_values: list[float], q: float) -> list[bool]:
    """Which hypotheses the BH step-up procedure rejects at FDR level q."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    below = [p_values[i] <= q * (rank + 1) / m for rank, i in enumerate(order)]
    k = max((rank + 1 for rank, ok in enumerate(below) if ok), default=0)
    keep = [False] * m
    for i in order[:k]:
        keep[int(i)] = True
    return keep


class InsightFinder:
    """Answers ``{"relationships": [{"with", "test", "effect_size", "p_value"}], "tested": n}``."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self._tables: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    def __call__(self, case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        key, groups = case["key"], case["group_columns"]
        asset, measure = case["measure"].split(".", 1)
        target = self._table(context, case["tables"][asset])
        tests: list[tuple[str, str, float, float]] = []
        for other in case["scope"]:
            data = self._table(context, case["tables"][other])
            keys, ti, oi = np.intersect1d(target[key], data[key], assume_unique=True, return_indices=True)
            x = target[measure][ti]
            for name, values in data.items():
                if name == key or (other == asset and name == measure):
                    continue
                y = values[oi]
                if name == groups[other]:
                    tests.append((f"{other}.{name}", "anova", *_anova(x, y)))
                else:
                    r, p = stats.pearsonr(x, y)
                    tests.append((f"{other}.{name}", "pearson", float(r), float(p)))
        keep = benjamini_hochberg([t[3] for t in tests], float(case["q"]))
        return {
            "relationships": [
                {"with": w, "test": t, "effect_size": e, "p_value": p} for (w, t, e, p), k in zip(tests, keep, strict=True) if k
            ],
            "tested": len(tests),
        }

    def _table(self, context: dict[str, Any], table: str) -> dict[str, np.ndarray]:
        cache_key = (context["dataset"]["url"], table)
        with self._lock:
            if cache_key not in self._tables:
                root = Storage.from_url(context["dataset"]["url"])
                fs = dataset_filesystem(context)
                parts = []
                for part in context["dataset"]["manifest"]["tables"][table]["partitions"]:
                    with fs.open(root.path(part["path"]), "rb") as fh:
                        parts.append(pq.read_table(fh))
                cols: dict[str, np.ndarray] = {}
                for name in parts[0].column_names:
                    chunks = [t.column(name).combine_chunks() for t in parts]
                    if hasattr(chunks[0], "dictionary"):  # a group column: its labels
                        cols[name] = np.concatenate(
                            [np.asarray(c.dictionary.to_pylist(), dtype=object)[c.indices.to_numpy()] for c in chunks]
                        )
                    else:
                        cols[name] = np.concatenate([c.to_numpy() for c in chunks])
                self._tables[cache_key] = cols
            return self._tables[cache_key]


def _anova(x: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(eta squared, p-value) of a one-way ANOVA of x across the labels."""
    groups = [x[labels == g] for g in np.unique(labels)]
    groups = [g for g in groups if len(g) > 1]
    if len(groups) < 2:
        return 0.0, 1.0
    f, p = stats.f_oneway(*groups)
    grand = x.mean()
    between = sum(len(g) * (g.mean() - grand) ** 2 for g in groups)
    total = ((x - grand) ** 2).sum()
    return float(between / total) if total > 0 else 0.0, float(p)
