"""Pins of what every scenario generates: its spec at the default scale, and its data at a small one.

The values below were observed on the code before scenarios became one package each (issue 14),
at commit d091bf3, and pasted here as literals: moving code must change neither a spec (its hash
names the dataset folder, so a changed hash silently regenerates every dataset) nor a byte of the
Parquet files (xxh3-128 of each partition, as the written _manifest.json records it).

- default scale: ``get_scenario(sid).dataset_spec(sc.default_records, DEFAULT_SEED)``, hash only;
- small scale: the smallest record count each scenario accepts (one below is refused), written
  with the real partition writer (tests/issue5_support.py ``materialize_local``, no Dask).

A deliberate change of a generator changes these pins: update them in the same commit, and say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenario_pipeline.datasets.manifest import MANIFEST, dataset_root
from scenario_pipeline.scenarios.registry import get_scenario, scenario_ids
from scenario_pipeline.settings import DEFAULT_SEED
from scenario_pipeline.storage import Storage
from tests.issue5_support import materialize_local

# scenario id -> (spec hash at the default scale, smallest records, spec hash there, {table: [partition checksums]})
PINS: dict[str, tuple[str, int, str, dict[str, list[str]]]] = {
    "s01-overflow": (
        "fb8edd557e09d9ff",
        5200,
        "704c7c53945d2de8",
        {
            "sales": ["xxh3-128:15e258563a6b64e30e162cb309d9c15e"],
        },
    ),
    "s02-conflicts": (
        "cc5815fade1ea611",
        100,
        "fa05a840d9f4dad4",
        {
            "crm": ["xxh3-128:79709ae5fed62dd82894321dd5e694a1"],
            "billing": ["xxh3-128:7e630c86522f8238136a99a867a93585"],
            "support": ["xxh3-128:53a4bc32f2c88c8251e952c5f5505e55"],
        },
    ),
    "s03-warehouse": (
        "be6cae9d9e16c1dd",
        30,
        "7cbe0ff72aabd8f3",
        {
            "wh_tables": ["xxh3-128:82e4f3a4cb336374d169aa5895f55697"],
            "wh_columns": ["xxh3-128:ce11ef6021a812d3bd3b37d216822888"],
            "wh_lineage": ["xxh3-128:b652ec966e501c4d5d048926b783828c"],
        },
    ),
    "s11-evolution": (
        "11343b07a2536624",
        8000,
        "abd08477512d14b7",
        {
            "orders__20250101": ["xxh3-128:d62bced3e4c63ff496f11ae5f5d33d8b"],
            "orders__20250315": ["xxh3-128:5f636168020f44cd19c6df50b49a4b7f"],
            "orders__20250519": ["xxh3-128:4576753651073237e5f52ddb98787c3b"],
            "orders__20250706": ["xxh3-128:f5390ab7c3973df556ef8b8929d1826f"],
            "orders__20250821": ["xxh3-128:5a979994b7ad6f1832d3aa455d9f4a1d"],
            "orders__20250922": ["xxh3-128:d76aaabd227abe9e572878b098a02f62"],
            "orders__20251025": ["xxh3-128:d8780cd40ef402026589998d06882ef6"],
            "orders__20251129": ["xxh3-128:15ed8771d6db8c870b46599830d095f2"],
        },
    ),
    "s12-search": (
        "4df999729348b6bb",
        1,
        "68685ab3e9d8f0e1",
        {
            "events": ["xxh3-128:ad6ae001ddc418f0f6ea26511d794867"],
        },
    ),
    "s13-insights": (
        "6be5d70c24f6bb8d",
        200,
        "074f232cb7c3f702",
        {
            "crm": ["xxh3-128:0598d2c548662fe5bcd53a969d1a3667"],
            "billing": ["xxh3-128:bf69d530cce5afa226c0b80dd4a1a0fc"],
            "web": ["xxh3-128:2baedcdc2b3a9619eb15a5d233677f16"],
            "support": ["xxh3-128:9441309e82d012c4621ed5d84855570f"],
            "product": ["xxh3-128:dbde6c2020636dc48ada84ff062639e5"],
            "marketing": ["xxh3-128:063da837f40c788eb732fa0670015fb4"],
        },
    ),
    "s14-query": (
        "3e67902313b6275c",
        2000,
        "fe8d87eaacc2e951",
        {
            "sales": ["xxh3-128:6e6e829e92d3cff200f8608013676e57"],
            "stores": ["xxh3-128:1f7902d9fcb26655809e53d060e3c10f"],
            "products": ["xxh3-128:ee5b1b6e7abcaf78b1ec6d69de723dde"],
            "customers": ["xxh3-128:d3406276c47e79c208676d803f897067"],
        },
    ),
    "s15-pii": (
        "0ef54f6e71e40663",
        400,
        "e4fd9f81ba5f4f48",
        {
            "devices_0000": ["xxh3-128:233d7bd5aa1eb5c4ab3b178f5a4bd87a"],
        },
    ),
    "s16-zombies": (
        "4df26567015f2f5c",
        20000,
        "869e5403114cfd32",
        {
            "query_log": ["xxh3-128:24f508a812fee95ef09b3870b0cc8e00"],
            "objects": ["xxh3-128:8bf78a72f52db3470e5ab73e16ca428c"],
            "lineage": ["xxh3-128:7cc558b0b9cc497e9037e6cdddc6c52a"],
        },
    ),
}


def test_every_scenario_is_pinned() -> None:
    assert sorted(PINS) == scenario_ids()


@pytest.mark.parametrize("sid", sorted(PINS))
def test_spec_hash_at_the_default_scale(sid: str) -> None:
    sc = get_scenario(sid)
    assert sc.dataset_spec(sc.default_records, DEFAULT_SEED).spec_hash() == PINS[sid][0]


@pytest.mark.parametrize("sid", sorted(PINS))
def test_partition_checksums_at_the_smallest_scale(sid: str, tmp_path: Path) -> None:
    _, records, small_hash, checksums = PINS[sid]
    spec = get_scenario(sid).dataset_spec(records, DEFAULT_SEED)
    assert spec.spec_hash() == small_hash
    materialize_local(spec, tmp_path)
    manifest = json.loads(Path(dataset_root(Storage.from_url(str(tmp_path)), spec).path(MANIFEST)).read_text())
    assert manifest["spec_hash"] == small_hash
    written = {table: [p["checksum"] for p in t["partitions"]] for table, t in manifest["tables"].items()}
    assert written == checksums
