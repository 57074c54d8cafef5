"""Business rules: a partition that breaks one fails with a report and is never published."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from distributed import Client

from scenario_pipeline.datasets.manifest import MANIFEST, dataset_root
from scenario_pipeline.datasets.partition import build_partition, write_partition
from scenario_pipeline.datasets.spec import DatasetSpec, Rules, TableSpec, column
from scenario_pipeline.errors import ValidationFailed
from scenario_pipeline.storage import Storage


def _spec(*cols, records: int = 20_000, partition_rows: int | None = None) -> DatasetSpec:
    table = TableSpec(name="t", columns=(column("record_id", "record_id"), *cols))
    return DatasetSpec(name="rules", seed=11, records=records, partition_rows=partition_rows or records, tables=(table,))


def _nothing_published(root: Storage) -> None:
    folder = Path(root.path("t"))
    assert not list(folder.glob("*.parquet")) and not list(folder.glob("_parts/*.json"))
    assert not any(f.name.startswith(".") for f in folder.glob("*")) if folder.exists() else True


def test_range_rule_broken_fails_with_exact_count(data_dir: Path) -> None:
    # the generator draws 0..99 but the rule says at most 49: about half the rows break it
    spec = _spec(column("qty", "int", low=0, high=100, rules=Rules(min=0, max=49)))
    root = dataset_root(Storage.from_url(str(data_dir)), spec)
    values = build_partition(spec, "t", 0).column("qty").to_numpy()
    expected = int((values > 49).sum())
    assert 9_000 < expected < 11_000  # half of 20,000, within 14 sds
    with pytest.raises(ValidationFailed) as info:
        write_partition(spec, root, "t", 0, gx=True)
    text = str(info.value)
    assert "partition 0 of rules.t broke 1 rule(s) and was not published" in text
    line = next(ln for ln in text.splitlines() if "column qty" in ln)
    assert f"rule '<= 49' on column qty: {expected:,} of 20,000 rows break it (found by footer statistics)" in line
    _nothing_published(root)


def test_uniqueness_only_the_expectation_suite_can_see(data_dir: Path) -> None:
    # 1,000 draws of 10 values: all 10 appear (P(one missing) ~ 10 * 0.9^1000), so 990 rows
    # repeat a value. Footer statistics cannot see duplicates; the GX sample (all rows here) does.
    spec = _spec(column("code", "int", low=0, high=10, rules=Rules(min=0, max=9, unique=True)), records=1_000)
    root = dataset_root(Storage.from_url(str(data_dir)), spec)
    with pytest.raises(ValidationFailed) as info:
        write_partition(spec, root, "t", 0, gx=True)
    line = next(ln for ln in str(info.value).splitlines() if "column code" in ln)
    assert "rule 'unique' on column code: 990 of 1,000 rows break it" in line
    assert "found by great expectations: expect_column_values_to_be_unique" in line
    _nothing_published(root)


def test_allowed_values_checked_through_the_dictionary(data_dir: Path) -> None:
    spec = _spec(column("k", "category", values=["a", "b", "c"], rules=Rules(allowed=("a", "b"))))
    root = dataset_root(Storage.from_url(str(data_dir)), spec)
    k = build_partition(spec, "t", 0).column("k").to_pylist()
    with pytest.raises(ValidationFailed) as info:
        write_partition(spec, root, "t", 0, gx=False)  # the dictionary check alone, no GX
    assert f"rule 'in {{a, b}}' on column k: {k.count('c'):,} of 20,000 rows break it (found by dictionary); e.g. 'c'" in str(
        info.value
    )


def test_valid_partition_passes_and_records_its_checks(data_dir: Path) -> None:
    spec = _spec(column("qty", "int", low=0, high=100), column("k", "category", values=["a", "b"], null_rate=0.1), records=50_000)
    root = dataset_root(Storage.from_url(str(data_dir)), spec)
    info = write_partition(spec, root, "t", 0, gx=True)
    # 50,000 rows > 16,384: GX sees the evenly spaced sample
    assert info.checks == "footer statistics + dictionaries + great expectations (16,384 sampled rows)"
    small = _spec(column("qty", "int", low=0, high=100), records=10_000)
    assert write_partition(small, dataset_root(Storage.from_url(str(data_dir)), small), "t", 0, gx=True).checks.endswith(
        "(10,000 sampled rows)"
    )
    assert Path(root.path(info.path)).exists()


@pytest.mark.slow
def test_failing_partitions_keep_the_dataset_unpublished(data_dir: Path, dask_local: str) -> None:
    from scenario_pipeline.tasks.generate import materialize

    # ts rises with the record id over 4 days; the rule allows only the first 2 days, so
    # partitions 0-1 (records 0-9,999) pass and partitions 2-3 (10,000-19,999) break it
    origin = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
    two_days = 2 * 86_400 * 1_000_000
    spec = _spec(
        column("ts", "timestamp", start="2026-01-01T00:00:00", span_days=4.0, rules=Rules(min=origin, max=origin + two_days)),
        records=20_000,
        partition_rows=5_000,
    )
    storage = Storage.from_url(str(data_dir))
    root = dataset_root(storage, spec)
    ts = build_partition(spec, "t", 2).column("ts").cast("int64").to_numpy()
    assert (ts > origin + two_days).sum() == 5_000  # all of partition 2 is past day 2: record 10,000 starts day 2 exactly
    with Client(dask_local) as client, pytest.raises(ValidationFailed) as info:
        materialize(client, spec, storage)
    text = str(info.value)
    assert re.search(r"partition [23] of rules\.t broke 1 rule\(s\)", text)
    assert "on column ts: 5,000 of 5,000 rows break it" in text
    assert not root.exists(MANIFEST)
    written = sorted(p.name for p in Path(root.path("t")).glob("*.parquet"))
    assert "part-0000002.parquet" not in written and "part-0000003.parquet" not in written
    assert set(written) <= {"part-0000000.parquet", "part-0000001.parquet"}
