"""A generated dataset is a folder of Parquet that DuckDB, pyarrow and polars read as is, and a
dataset without its manifest says it is incomplete."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as pads
import pytest

from scenario_pipeline.datasets.catalog import build_spec
from scenario_pipeline.datasets.manifest import build_manifest, dataset_root, read_manifest, table_files, write_manifest
from scenario_pipeline.datasets.partition import write_partition
from scenario_pipeline.errors import DatasetError
from scenario_pipeline.storage import Storage


def test_three_readers_agree_and_the_manifest_is_the_door(data_dir: Path) -> None:
    spec = build_spec("events", records=250_000, seed=3, partition_rows=100_000)  # 3 partitions: 100k, 100k, 50k
    root = dataset_root(Storage.from_url(str(data_dir)), spec)
    infos = [write_partition(spec, root, "events", p, gx=False) for p in range(spec.partitions)]
    with pytest.raises(DatasetError, match="is incomplete: it has no _manifest.json; run `scenario generate`"):
        read_manifest(root)
    write_manifest(root, build_manifest(spec, {"events": infos}))
    manifest = read_manifest(root)
    assert [p["rows"] for p in manifest["tables"]["events"]["partitions"]] == [100_000, 100_000, 50_000]
    folder = root.path("events")

    duck = (
        duckdb.connect().execute(f"SELECT count(*), sum(quantity), count(tag) FROM read_parquet('{folder}/*.parquet')").fetchone()
    )
    arrow = pads.dataset(folder, format="parquet").to_table(columns=["quantity", "tag"])  # skips _parts/ and dot files
    frame = (
        pl.scan_parquet(f"{folder}/*.parquet").select(pl.len(), pl.col("quantity").sum(), pl.col("tag").count()).collect().row(0)
    )
    assert duck == (250_000, arrow.column("quantity").to_numpy().sum(), 250_000 - arrow.column("tag").null_count)
    assert tuple(frame) == duck
    assert table_files(root, manifest, "events") == [f"{folder}/part-{i:07d}.parquet" for i in range(3)]
    with pytest.raises(DatasetError, match="has no table 'nope'"):
        table_files(root, manifest, "nope")


def test_manifest_refuses_a_missing_partition(data_dir: Path) -> None:
    spec = build_spec("events", records=30_000, seed=3, partition_rows=10_000)
    root = dataset_root(Storage.from_url(str(data_dir)), spec)
    infos = [write_partition(spec, root, "events", p, gx=False) for p in (0, 2)]
    with pytest.raises(DatasetError, match=r"table events has partitions \[0, 2\], expected 0..2"):
        build_manifest(spec, {"events": infos})
