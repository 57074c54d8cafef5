"""The oracle (truth from the spec alone) against a full DuckDB scan of materialized data,
for every kind of planted feature this test knows how to scan for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
    rows = con.execute(
        "SELECT record_id, region, customer_id, revenue, ts FROM sales WHERE segment = 'enterprise' ORDER BY record_id"
    ).fetchall()
    assert len(rows) == len(truth.record_ids) > 0
    assert [r[0] for r in rows] == truth.record_ids.tolist()
    assert [r[1] for r in rows] == [truth.cells[c].region for c in truth.cell_of]
    assert [r[2] for r in rows] == truth.account_of.tolist()
    assert [round(r[3] * 100) for r in rows] == truth.cents_of.tolist()
    # each planted row's timestamp lies inside its cell's week (the oracle chose ids for it)
    for (_, _, _, _, ts), c in zip(rows, truth.cell_of, strict=True):
        cell = truth.cells[c]
        assert cell.ts_from <= ts.strftime("%Y-%m-%dT%H:%M:%S") < cell.ts_to


CHECKERS: dict[str, Callable[[Path], None]] = {"needles": check_needles, "key_accounts": check_key_accounts}

# Kinds whose written data is scanned against the oracle by their scenario's own tests, which
# know what each planted value should look like.
SCANNED_IN: dict[str, str] = {
    "pii_table": "tests/test_scenario_s15.py::test_planted_tables_are_what_the_oracle_says",
    "s02_conflicts": "tests/test_scenario_s02.py::test_planted_data_is_what_the_oracle_says",
    "s11_schema_epochs": "tests/test_scenario_s11.py::test_written_epochs_show_the_planted_changes",
    "s13_relationships": "tests/test_scenario_s13.py::test_written_data_follows_the_planted_model",
    "s16_zombies": "tests/test_scenario_s16.py::test_written_data_follows_the_oracle",
    "warehouse_catalog": "tests/test_scenario_s03.py::test_catalog_in_parquet_is_the_model",
}


@pytest.mark.parametrize("kind", sorted(CHECKERS))
def test_oracle_matches_a_full_scan(kind: str, data_dir: Path) -> None:
    CHECKERS[kind](data_dir)


def test_every_feature_kind_has_an_oracle_versus_data_check() -> None:
    """A new feature kind fails here until someone scans its written data against its oracle."""
    root = Path(__file__).resolve().parent.parent
    missing = [k for k in feature_kinds() if k not in CHECKERS and k not in SCANNED_IN]
    assert not missing, f"add an oracle-vs-scan check for {missing} to CHECKERS or SCANNED_IN"
    for kind, where in SCANNED_IN.items():
        path, _, name = where.partition("::")
        assert f"def {name}(" in (root / path).read_text(), f"{kind}: {where} is gone"
