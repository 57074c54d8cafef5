"""Hostile agents that try to win through the numbers, end to end through the real `scenario run`:
each test computes by hand what the agent honestly earned and asserts the run reports exactly that.

Attacks on the sandbox itself (escaping it, reading secrets, forging checkpoints) are in
tests/test_sandbox_hostile.py and tests/test_checkpoint_integrity.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from scenario_pipeline.scenarios.registry import get_scenario
from tests.agents_integrity import raises_on
from tests.fault_table import record
from tests.helpers import REPO, run_cli

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def _run(
    prefect_server: str, data_dir: Path, scenario: str, agent: str, run_id: str, records: int, cases: int
) -> tuple[int, dict]:
    proc = run_cli(
        [
            "run",
            scenario,
            "--records",
            str(records),
            "--cases",
            str(cases),
            "--agent",
            agent,
            "--seed",
            "11",
            "--data-dir",
            str(data_dir),
            "--run-id",
            run_id,
            "--json",
        ],
        {"PREFECT_API_URL": prefect_server, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def _rows(data_dir: Path, run_id: str) -> list[dict]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    cur = con.execute(
        "SELECT case_id, passed, reason, metrics_json, error_kind, read_bytes, input_tokens FROM case_results "
        "WHERE run_id = ? ORDER BY case_index",
        [run_id],
    )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    con.close()
    return rows


def test_errored_cases_count_as_misses_not_as_absent(prefect_server: str, data_dir: Path) -> None:
    """Attack 8: answer half the cases perfectly, raise on the rest, hope the errors drop out."""
    sc = get_scenario("s12")
    cases = sc.draw_cases(sc.dataset_spec(100_000, 11), 12, 11)
    refused = {c.case_id for c in cases if raises_on(c.input["predicate"]["value"])}
    assert 0 < len(refused) < 12  # the seed gives a mix; the numbers below follow from it
    code, s = _run(prefect_server, data_dir, "s12", "tests.agents_integrity:s12_half_errors", "integrity-errors", 100_000, 12)
    answered = 12 - len(refused)
    assert code == 1 and s["status"] == "completed" and s["passed"] is False
    assert s["metrics"]["recall"] == pytest.approx(answered / 12)  # each refused case counts as recall 0
    assert s["metrics"]["precision"] == pytest.approx(answered / 12)
    assert s["counts"]["errors"] == len(refused) and s["counts"]["errors_by_kind"] == {"raised": len(refused)}
    rows = _rows(data_dir, "integrity-errors")
    assert {r["case_id"] for r in rows if r["error_kind"] == "raised"} == refused
    for r in rows:
        if r["case_id"] in refused:
            assert json.loads(r["metrics_json"])["recall"] == 0.0 and r["reason"].startswith("agent raised RuntimeError")
    assert s["thresholds"]["recall"] == {"target": 1.0, "passed": False, "unmeasured": False}
    record(
        "attack 8, pass by failing: S12 agent answers 12 cases, raises on a fixed half",
        f"errored cases scored as misses: recall {s['metrics']['recall']:.3f} = {answered}/12 by hand, run FAILED, exit 1",
        12,
        len(rows),
        len(rows) - len({r["case_id"] for r in rows}),
    )


def test_claimed_reads_are_shown_never_scored(prefect_server: str, data_dir: Path) -> None:
    """Attack 7: claim bytes_read 0 to meet S12's read budget."""
    code, s = _run(prefect_server, data_dir, "s12", "tests.agents_integrity:s12_claims_no_reads", "integrity-claims", 100_000, 8)
    rows = _rows(data_dir, "integrity-claims")
    manifest = next((data_dir / "datasets" / "events").glob("*/_manifest.json"))
    dataset_bytes = sum(t["bytes"] for t in json.loads(manifest.read_text())["tables"].values())
    assert all(r["read_bytes"] and r["read_bytes"] > 0 for r in rows)  # measured by the harness from outside the agent
    assert s["metrics"]["bytes_read_share"] == pytest.approx(sum(r["read_bytes"] for r in rows) / (8 * dataset_bytes))
    assert s["metrics"]["claimed_bytes_read_share"] == 0.0 and s["metric_sources"]["claimed_bytes_read_share"] == "claimed"
    assert "claimed_bytes_read_share" not in s["thresholds"]
    assert s["metrics"]["recall"] == 1.0
    record(
        "attack 7, claim a threshold: S12 agent answers bytes_read 0",
        f"bytes_read_share {s['metrics']['bytes_read_share']:.4f} measured from outside the sandbox; the claim 0 shown as claimed, "
        "never thresholded",
        8,
        len(rows),
        len(rows) - len({r["case_id"] for r in rows}),
    )


def test_pii_under_the_reserved_usage_key_is_caught(prefect_server: str, data_dir: Path) -> None:
    """Attack 9: put the raw PII values under `usage`, which used to be stripped before the echo check."""
    code, s = _run(prefect_server, data_dir, "s15", "tests.agents_integrity:s15_pii_in_usage", "integrity-usage", 2_400, 4)
    rows = _rows(data_dir, "integrity-usage")
    assert code == 1 and s["passed"] is False
    assert s["metrics"]["pii_echo_rate"] == 1.0 and s["thresholds"]["pii_echo_rate"]["passed"] is False
    assert all(not r["passed"] and "echoes a raw PII value" in r["reason"] for r in rows)
    assert all(r["input_tokens"] == 10 for r in rows)  # the claimed usage is still recorded, as claimed
    record(
        "attack 9, hide PII under the reserved usage key (S15)",
        "the echo check covers the whole answer: every case failed 'the answer echoes a raw PII value', pii_echo_rate 1.0, exit 1",
        4,
        len(rows),
        len(rows) - len({r["case_id"] for r in rows}),
    )


def test_an_untrusted_agent_is_refused_where_no_sandbox_can_be_had(tmp_path: Path) -> None:
    """No bubblewrap on PATH: a Python agent is refused up front in one line, unless --trust-agent."""
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {"PATH": str(bare), "PREFECT_API_URL": "http://127.0.0.1:9/api", "PYTHONPATH": str(REPO)}
    args = [
        "run",
        "s12",
        "--records",
        "100000",
        "--cases",
        "2",
        "--agent",
        "tests.agents_integrity:s12_claims_no_reads",
        "--data-dir",
        str(tmp_path / "data"),
    ]
    proc = run_cli(args, env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "the agent sandbox is unavailable on this machine (bwrap is not installed" in proc.stderr
    assert "pass --trust-agent to run it without isolation" in proc.stderr
    assert not (tmp_path / "data" / "runs").exists()  # nothing written
    # Vouched for, it passes that check (and stops at the next one: no Prefect server on port 9).
    trusted = run_cli([*args, "--trust-agent"], env)
    assert "sandbox is unavailable" not in trusted.stderr


def test_a_private_seed_is_written_nowhere_and_runs_still_compare(prefect_server: str, data_dir: Path) -> None:
    """Attack 2's seed half: with --private-seed the seed is in no file, parameter, log or row the
    harness writes, only its commitment; a rerun with another private seed cannot resume the run."""
    import httpx

    seed = "8123456789012345678"
    env = {"PREFECT_API_URL": prefect_server, "SCENARIO_PRIVATE_SEED": seed}
    args = [
        "run",
        "s12",
        "--no-fail-on-threshold",
        "--records",
        "100000",
        "--cases",
        "4",
        "--private-seed",
        "--data-dir",
        str(data_dir),
        "--run-id",
        "private-1",
        "--json",
    ]
    proc = run_cli(args, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads(proc.stdout)
    assert s["seed"] == -1 and len(s["seed_commitment"]) == 32 and s["metrics"]["recall"] == 1.0
    assert seed not in proc.stdout + proc.stderr
    run_json = (data_dir / "runs" / "private-1" / "run.json").read_text()
    assert seed not in run_json and s["seed_commitment"] in run_json
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT seed, seed_commitment FROM runs WHERE run_id = 'private-1'").fetchone() == (
        -1,
        s["seed_commitment"],
    )
    con.close()
    flow_run = httpx.get(f"{prefect_server}/flow_runs/{s['flow_run_id']}").json()
    logs = httpx.post(
        f"{prefect_server}/logs/filter", json={"logs": {"flow_run_id": {"any_": [s["flow_run_id"]]}}, "limit": 200}
    ).json()
    assert seed not in json.dumps(flow_run) and seed not in json.dumps(logs) and flow_run["parameters"]["seed"] is None
    # Only the harness's answer key holds it.
    assert any(seed in p.read_text() for p in (data_dir / "truth").rglob("*.json"))
    # Another private seed draws other cases: the run id refuses it instead of mixing them.
    other = run_cli(args, {**env, "SCENARIO_PRIVATE_SEED": str(int(seed) + 1)})
    assert other.returncode == 2 and "seed_commitment" in other.stderr and seed not in other.stderr
