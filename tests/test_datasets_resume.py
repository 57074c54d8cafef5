"""kill -9 of a real ``scenario generate`` mid-way, then the same command again: it finishes
the rest, rewrites nothing it had, duplicates nothing, and writes a correct manifest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from scenario_pipeline.datasets.catalog import build_spec
from scenario_pipeline.settings import DEFAULT_SEED
from tests.helpers import REPO, VENV_BIN, run_cli

RECORDS, ROWS, PARTS = 2_400_000, 50_000, 48


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.slow
def test_kill_9_then_rerun_completes_without_duplicates(prefect_server: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ["generate", "events", "--records", str(RECORDS), "--partition-rows", str(ROWS), "--data-dir", str(data), "--json"]
    spec = build_spec("events", RECORDS, DEFAULT_SEED, ROWS)
    root = data / "datasets" / "events" / spec.spec_hash()
    parts, sidecars = root / "events", root / "events" / "_parts"

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [str(VENV_BIN / "scenario"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while len(list(sidecars.glob("part-*.json"))) < 3:
            assert proc.poll() is None, "generate exited before it could be killed"
            assert time.monotonic() < deadline, "no partition written within 240 s"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its flow, its LocalCluster's workers: all at once
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    for _ in range(100):
        if not _group_alive(proc.pid):
            break
        time.sleep(0.1)
    assert not _group_alive(proc.pid)

    assert not (root / "_manifest.json").exists()
    kept = {
        p.name: p.stat().st_mtime_ns
        for p in parts.glob("part-*.parquet")
        if (sidecars / p.name.replace(".parquet", ".json")).exists()
    }
    assert 3 <= len(kept) < PARTS, f"killed after {len(kept)} partitions: not mid-way"

    done = run_cli(args, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["partitions_reused"] == len(kept) and summary["partitions_written"] == PARTS - len(kept)
    assert summary["rows"] == RECORDS and not summary["already_complete"]

    # what the earlier run wrote whole was kept, not rewritten
    assert {n: (parts / n).stat().st_mtime_ns for n in kept} == kept
    manifest = json.loads((root / "_manifest.json").read_text())
    listed = manifest["tables"]["events"]["partitions"]
    assert [p["index"] for p in listed] == list(range(PARTS))
    assert sum(p["rows"] for p in listed) == manifest["tables"]["events"]["rows"] == RECORDS
    assert all(p["bytes"] == (root / p["path"]).stat().st_size for p in listed)
    assert sorted(p.name for p in parts.iterdir() if not p.name.startswith(".")) == ["_parts"] + [
        f"part-{i:07d}.parquet" for i in range(PARTS)
    ]
    con = duckdb.connect()
    n, distinct, lo, hi = con.execute(
        f"SELECT count(*), count(DISTINCT record_id), min(record_id), max(record_id) FROM read_parquet('{parts}/*.parquet')"
    ).fetchone()
    assert (n, distinct, lo, hi) == (RECORDS, RECORDS, 0, RECORDS - 1)

    again = run_cli(args, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["already_complete"] is True
    assert {n: (parts / n).stat().st_mtime_ns for n in kept} == kept
