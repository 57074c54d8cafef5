"""Named datasets. A dataset is a function (records, seed, partition_rows) -> DatasetSpec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from scenario_pipeline.datasets.discovery import discover
from scenario_pipeline.datasets.spec import DatasetSpec, FeatureSpec, TableSpec, column
from scenario_pipeline.errors import UsageError


class DatasetBuilder(Protocol):
    def __call__(self, records: int, seed: int, partition_rows: int | None = None) -> DatasetSpec: ...


_DATASETS: dict[str, DatasetBuilder] = {}


def dataset(name: str) -> Callable[[DatasetBuilder], DatasetBuilder]:
    def register(fn: DatasetBuilder) -> DatasetBuilder:
        _DATASETS[name] = fn
        return fn

    return register


def dataset_names() -> list[str]:
    """Every registered dataset: this module's and the scenario packages' own."""
    discover()
    return sorted(_DATASETS)


def build_spec(name: str, records: int, seed: int, partition_rows: int | None = None) -> DatasetSpec:
    if name not in _DATASETS:  # scenario packages register datasets of their own (datasets/discovery.py)
        discover()
    if name not in _DATASETS:
        raise UsageError(f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())}")
    if records <= 0:
        raise UsageError(f"records must be a positive number, got {records}")
    if partition_rows is not None and partition_rows <= 0:
        raise UsageError(f"partition rows must be a positive number, got {partition_rows}")
    if partition_rows is not None and partition_rows > records:
        raise UsageError(f"partition rows ({partition_rows}) cannot exceed records ({records})")
    try:
        return _DATASETS[name](records=records, seed=seed, partition_rows=partition_rows)
    except ValueError as exc:
        raise UsageError(f"dataset {name}: {exc}") from exc


MAX_DEFAULT_PARTITIONS = 100_000


def default_partition_rows(records: int) -> int:
    """1,000,000 rows a partition (about 13.5 MB of zstd Parquet), fewer for small datasets; above
    10^11 records, enough rows to stay at 100,000 partitions (the manifest lists every one, and
    generation streams a partition in chunks, so bigger files cost no memory)."""
    return min(records, max(1_000_000, -(-records // MAX_DEFAULT_PARTITIONS)))


EVENT_CATEGORIES = (
    "books",
    "games",
    "garden",
    "grocery",
    "health",
    "home",
    "kids",
    "music",
    "office",
    "outdoor",
    "pets",
    "shoes",
    "sports",
    "tools",
    "toys",
    "travel",
)


def events_table() -> TableSpec:
    return TableSpec(
        name="events",
        columns=(
            column("record_id", "record_id"),
            column("ts", "timestamp", start="2026-01-01T00:00:00", span_days=365.0),
            column("user_id", "int", low=0, high=10_000_000, bits=32),
            column("category", "category", values=list(EVENT_CATEGORIES)),
            column("amount", "float", low=0.0, high=1000.0, decimals=2),
            column("quantity", "int", low=1, high=21, bits=32),
            column("status", "category", values=["ok", "refunded", "failed", "pending"], weights=[0.9, 0.04, 0.03, 0.03]),
            column("tag", "word", null_rate=0.05, vocabulary=1024),
        ),
        bloom_columns=("tag",),
    )


@dataset("events")
def events(records: int, seed: int, partition_rows: int | None = None) -> DatasetSpec:
    """The default fact table: purchases with a needle token planted in ``tag``."""
    return DatasetSpec(
        name="events",
        seed=seed,
        records=records,
        partition_rows=partition_rows or default_partition_rows(records),
        tables=(events_table(),),
        features=(
            FeatureSpec(
                kind="needles", table="events", column="tag", params={"groups": 1000, "min_per_group": 1, "max_per_group": 5}
            ),
        ),
    )
