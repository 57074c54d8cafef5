"""The run's ledger in real storage: kept across attempts, and shards lost in a kill imputed on resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenario_pipeline.cost.accounting import Usage
from scenario_pipeline.cost.live import RunCost, ledger_path
from scenario_pipeline.cost.prices import load_profile
from scenario_pipeline.storage import Storage
from scenario_pipeline.tasks.checkpoint import read_results, write_shard

PROFILE = load_profile("aws-us-east-1-2026-11")


def rows(shard: int, costs: list[float | None], tokens_in: int = 100) -> list[dict]:
    return [
        {
            "run_id": "led-1",
            "scenario": "s12-search",
            "case_id": f"c{shard}-{i}",
            "case_index": 10 * shard + i,
            "shard": shard,
            "passed": True,
            "reason": None,
            "metrics_json": "{}",
            "answer_digest": None,
            "answer_bytes": 2,
            "latency_ms": 1.0,
            "input_tokens": tokens_in,
            "output_tokens": 10,
            "cost_usd": c,
            "attributes_json": "{}",
            "worker": "w",
        }
        for i, c in enumerate(costs)
    ]


def test_the_ledger_survives_attempts_and_lost_shards_are_imputed(tmp_path: Path) -> None:
    storage = Storage.from_url(str(tmp_path / "store"))
    first = RunCost(storage, "led-1", PROFILE, max_cost_usd=1.0)
    # shard 0, accounted: 2 cases, 7200 thread-s (2 vCPU-h x 0.04048 = 0.08096), 2 x $0.01 reported
    first.shard_done(
        0,
        Usage(
            thread_seconds=7200,
            s3_put=1,
            s3_get=1,
            bytes_written=1000,
            input_tokens=200,
            output_tokens=20,
            agent_cost_usd=0.02,
            cases=2,
        ).to_dict(),
        2,
    )
    first.save(force=True)  # + 1 PUT in stage checkpoints: 0.000005
    spent = 0.08096 + 0.000005 + 0.0000004 + 0.02 + 0.000005  # vCPU, shard PUT, shard HEAD, agent, the ledger's PUT
    assert first.spent_usd == pytest.approx(spent, abs=1e-12)
    # Shards 1 and 2 were checkpointed, but the process was killed before the ledger learnt of them.
    for shard, costs in ((0, [0.01, 0.01]), (1, [0.01, 0.03]), (2, [None, None])):
        write_shard(storage, "led-1", shard, rows(shard, costs))

    second = RunCost(storage, "led-1", PROFILE, max_cost_usd=1.0)
    assert second.ledger.attempts == 2
    assert second.spent_before_usd == pytest.approx(spent, abs=1e-12)
    assert second.guard.per_case_usd == pytest.approx(
        (0.08096 + 0.000005 + 0.0000004 + 0.02) / 2, abs=1e-12
    )  # shard 0's cost per case
    second.account_resumed({0, 1, 2}, lambda shards: read_results(storage, "led-1", shards).to_pylist())
    led = second.ledger
    assert sorted(led.imputed_shards) == [1, 2]
    # Agent usage is read back exactly: shard 1 reported $0.04; shard 2 reported tokens and no cost.
    assert led.shards[1].agent_cost_usd == pytest.approx(0.04)
    assert (led.shards[2].agent_cost_usd, led.shards[2].unpriced_input_tokens, led.shards[2].unpriced_output_tokens) == (
        0.0,
        200,
        20,
    )
    # Compute is imputed at shard 0's 3600 thread-s per case: 2 cases -> 7200 each
    assert led.shards[1].thread_seconds == pytest.approx(7200) and led.shards[2].thread_seconds == pytest.approx(7200)
    # The guard now counts them: shard 1 = 0.08096 + 0.04 + PUT + HEAD; shard 2 = 0.08096 + Sonnet tokens
    # (200 x 0.003 + 20 x 0.015) / 1000 = 0.0009 + PUT + HEAD; plus 2 GETs re-reading their rows
    imputed = (0.08096 + 0.04 + 0.0000054) + (0.08096 + 0.0009 + 0.0000054) + 2 * 0.0000004
    assert second.spent_usd == pytest.approx(spent + imputed, abs=1e-12)
    second.save(force=True)
    saved = json.loads((tmp_path / "store" / ledger_path("led-1")).read_text())
    assert saved["attempts"] == 2 and saved["imputed_shards"] == [1, 2] and sorted(saved["shards"]) == ["0", "1", "2"]
