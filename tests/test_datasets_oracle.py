"""The oracle (truth from the spec alone) against a full DuckDB scan of materialized data,
for every kind of planted feature this test knows how to scan for."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import duckdb
import pytest

from scenario_pipeline.datasets import oracle
from scenario_pipeline.datasets.catalog import build_spec
from scenario_pipeline.datasets.features import feature_kinds
from scenario_pipeline.datasets.manifest import dataset_root
from scenario_pipeline.datasets.partition import write_partition
from scenario_pipeline.datasets.spec import DatasetSpec
from scenario_pipeline.storage import Storage


def _materialize(spec: DatasetSpec, data_dir: Path) -> Storage:
    root = dataset_root(Storage.from_url(str(data_dir)), spec)
    for t in spec.tables:
        for p in range(spec.partitions_of(t.name)):
            write_partition(spec, root, t.name, p, gx=False)
    return root


def check_needles(data_dir: Path) -> None:
    spec = build_spec("events", records=2_000_000, seed=5, partition_rows=500_000)
    truth = oracle.needles(spec)
    root = _materialize(spec, data_dir)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{root.path('events')}/*.parquet')")
    # every row whose tag is a needle token, found by scanning all 2,000,000 rows
    rows = con.execute("SELECT record_id, tag FROM events WHERE tag LIKE 'zq%' ORDER BY record_id").fetchall()
    assert [r for r, _ in rows] == truth.record_ids.tolist()
    assert [t for _, t in rows] == [truth.tokens[g] for g in truth.groups]
    # 1,000 groups of 1 to 5 records each: at most 5,000 needles; a record drawn twice goes to
    # the lower group, so a one-record group can vanish (about 0.3 expected here)
    assert 990 <= len(rows) <= 5_000 and len(set(truth.groups.tolist())) >= 990
    # no vocabulary word looks like a token, and each group's records carry only its token
    for g in (0, 499, 999):
        ids = con.execute("SELECT record_id FROM events WHERE tag = ? ORDER BY record_id", [truth.tokens[g]]).fetchall()
        assert [i for (i,) in ids] == truth.of_group(g)


def check_key_accounts(data_dir: Path) -> None:
    from scenario_pipeline.scenarios.registry import load_all

    load_all()  # the overflow_sales dataset is S01's
    spec = build_spec("overflow_sales", records=1_000_000, seed=5, partition_rows=250_000)
    truth = oracle.of_kind(spec, "key_accounts")
    root = _materialize(spec, data_dir)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW sales AS SELECT * FROM read_parquet('{root.path('sales')}/*.parquet')")
    # every planted row, found by scanning for the segment no generated row has
    rows = con.execute("SELECT record_id, region, customer_id, revenue, ts FROM sales WHERE segment = 'enterprise' ORDER BY record_id").fetchall()
    assert len(rows) == len(truth.record_ids) > 0
    assert [r[0] for r in rows] == truth.record_ids.tolist()
    assert [r[1] for r in rows] == [truth.cells[c].region for c in truth.cell_of]
    assert [r[2] for r in rows] == truth.account_of.tolist()
    assert [round(r[3] * 100) for r in rows] == truth.cents_of.tolist()
    # each planted row's timestamp lies inside its cell's week (the oracle chose ids for it)
    for (_, _, _, _, ts), c in zip(rows, truth.cell_of):
        cell = truth.cells[c]
        assert cell.ts_from <= ts.strftime("%Y-%m-%dT%H:%M:%S") < cell.ts_to


CHECKERS: dict[str, Callable[[Path], None]] = {"needles": check_needles, "key_accounts": check_key_accounts}


@pytest.mark.parametrize("kind", feature_kinds())
def test_oracle_matches_a_full_scan(kind: str, data_dir: Path) -> None:
    if kind not in CHECKERS:
        pytest.skip(f"no oracle-vs-scan check for feature kind {kind!r} yet: add one to CHECKERS in {Path(__file__).name}")
    CHECKERS[kind](data_dir)
