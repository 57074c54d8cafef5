"""S02 multi-source conflicts: scorer by hand, planted data against the oracle, the test agents,
the reference agent at the default scale, and one CLI run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from scenario_pipeline.datasets import oracle
from scenario_pipeline.errors import UsageError
from scenario_pipeline.scenarios.base import Case
from scenario_pipeline.scenarios.declared import error_metrics
from scenario_pipeline.scenarios.registry import get_scenario
from tests import agents_issue5 as agents
from tests.helpers import run_cli
from tests.issue5_support import materialize_local, score_run

S02 = get_scenario("s02")
SEED = 20261122


def _case(truth: list[tuple[int, str, object]]) -> Case:
    return Case(
        "c", 0, {"entity_ids": [1, 2, 3]}, {"conflicts": [{"entity_id": e, "field": f, "resolved": v} for e, f, v in truth]}
    )


def test_score_by_hand() -> None:
    case = _case([(1, "email", "ann.lee@x.test"), (1, "plan", "pro"), (2, "mrr", 49.5)])
    answer = {
        "conflicts": [
            {"entity_id": 1, "field": "email", "resolved": "  Ann.Lee@X.test "},  # hit, right after normalization
            {"entity_id": 1, "field": "plan", "resolved": "starter"},  # hit, wrong value
            {"entity_id": 3, "field": "address", "resolved": "1 oak st"},  # not a conflict
        ]
    }
    s = S02.score(case, answer, {})
    # 3 claimed, 3 true, 2 hits: precision 2/3, recall 2/3, F1 2/3; 1 of the 2 hits resolved right: 1/2
    assert s.metrics["precision"] == pytest.approx(2 / 3)
    assert s.metrics["recall"] == pytest.approx(2 / 3)
    assert s.metrics["f1"] == pytest.approx(2 / 3)
    assert s.metrics["resolution_accuracy"] == pytest.approx(0.5)
    assert not s.passed and s.reason == "found 2 of 3 conflicts with 1 false ones; resolved 1 of 2 found correctly"
    # amounts compare to the cent, and a numeric string counts as the number: 49.50 == 49.5
    ok = S02.score(_case([(2, "mrr", 49.5)]), {"conflicts": [{"entity_id": 2, "field": "mrr", "resolved": "49.50"}]}, {})
    assert ok.passed and ok.metrics == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "resolution_accuracy": 1.0}


@pytest.mark.parametrize(
    "answer, reason",
    [
        ({}, "answer.conflicts must be a list of {entity_id, field, resolved}"),
        ({"conflicts": [7]}, "answer.conflicts[0] is int, not an object"),
        ({"conflicts": [{"entity_id": "1", "field": "plan", "resolved": "pro"}]}, "answer.conflicts[0] has no integer entity_id"),
        (
            {"conflicts": [{"entity_id": True, "field": "plan", "resolved": "pro"}]},
            "answer.conflicts[0] has no integer entity_id",
        ),
        (
            {"conflicts": [{"entity_id": 1, "field": "shoe", "resolved": 9}]},
            "answer.conflicts[0] field 'shoe' is not one of email, address, plan, mrr",
        ),
        ({"conflicts": [{"entity_id": 1, "field": "plan"}]}, "answer.conflicts[0] has no resolved value"),
    ],
)
def test_malformed_answers_fail_with_a_reason(answer: dict, reason: str) -> None:
    s = S02.score(_case([(1, "plan", "pro")]), answer, {})
    assert not s.passed and s.reason == reason and s.metrics["recall"] == 0.0


def test_unreadable_resolved_values_are_wrong_not_errors() -> None:
    case = _case([(2, "mrr", 49.5), (1, "email", "a@b.test")])
    s = S02.score(
        case,
        {
            "conflicts": [
                {"entity_id": 2, "field": "mrr", "resolved": "lots"},
                {"entity_id": 1, "field": "email", "resolved": None},
            ]
        },
        {},
    )
    assert s.metrics["recall"] == 1.0 and s.metrics["resolution_accuracy"] == 0.0  # 0 of 2 hits resolved right


def test_aggregate_by_hand() -> None:
    rows = [
        {"passed": True, "latency_ms": 10.0, "metrics": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "resolution_accuracy": 1.0}},
        {
            "passed": False,
            "latency_ms": 20.0,
            "metrics": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "resolution_accuracy": 0.5},
        },
    ]
    # the agent timed out on a case with one conflict: it counts as a miss on every quality metric
    timed_out = error_metrics(S02, Case("c", 0, {}, {"conflicts": [{"entity_id": 1, "field": "email", "resolved": "a@b.c"}]}), {})
    assert timed_out == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "resolution_accuracy": 0.0}
    rows.append({"passed": False, "latency_ms": 30.0, "metrics": timed_out})
    m = S02.aggregate(rows)
    assert m["precision"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3
    assert m["recall"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3
    assert m["resolution_accuracy"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3
    assert m["pass_rate"] == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    spec = S02.dataset_spec(300, 7)
    return spec, materialize_local(spec, tmp_path_factory.mktemp("s02"))


def _norm(field: str, v: object) -> object:
    return None if v is None else round(float(v), 2) if field == "mrr" else " ".join(str(v).split()).lower()


def test_planted_data_is_what_the_oracle_says(tiny: tuple) -> None:
    """Read the written files, find every disagreement and resolve it with the documented rule
    (written again here), and compare with the oracle."""
    spec, ctx = tiny
    root = Path(ctx["dataset"]["url"].removeprefix("file://"))
    cols = {
        "email": {"crm": "email", "billing": "billing_email", "support": "contact_email"},
        "address": {"crm": "address", "billing": "billing_address"},
        "plan": {"crm": "plan", "billing": "plan_code", "support": "plan"},
        "mrr": {"crm": "mrr", "billing": "monthly_amount"},
    }
    tiers = {
        "email": [["crm", "support"], ["billing"]],
        "address": [["billing"], ["crm"]],
        "plan": [["billing"], ["crm"], ["support"]],
        "mrr": [["billing"], ["crm"]],
    }
    data = {s: pq.read_table(root / s / "part-0000000.parquet").to_pylist() for s in ("crm", "billing", "support")}
    found = {}
    for eid in range(300):
        for field, by_source in cols.items():
            values = {s: data[s][eid][c] for s, c in by_source.items()}
            if len({_norm(field, v) for v in values.values() if v is not None}) < 2:
                continue
            for tier in tiers[field]:
                have = [s for s in tier if values[s] is not None]
                if have:
                    found[(eid, field)] = _norm(field, values[max(have, key=lambda s: data[s][eid]["updated_at"])])
                    break
    planted = oracle.of_kind(spec, "s02_conflicts")
    expected = {(c.entity_id, c.field): _norm(c.field, c.resolved) for c in planted.conflicts}
    assert found == expected
    assert 12 <= len(expected) <= 40  # 8% of 300 customers conflicted, 1 or 2 fields each
    # cosmetic variants are really there and really differ in spelling only
    for eid, (field, source, raw) in planted.cosmetic.items():
        stored = data[source][eid][cols[field][source]]
        others = [data[s][eid][c] for s, c in cols[field].items() if s != source and data[s][eid][c] is not None]
        assert stored == raw and others
        assert all(o != stored and _norm(field, o) == _norm(field, stored) for o in others)


def test_cases_are_fixed_by_the_seed(tiny: tuple) -> None:
    spec, _ = tiny
    a, b = S02.draw_cases(spec, 10, 7), S02.draw_cases(spec, 10, 7)
    assert [c.input for c in a] == [c.input for c in b] and [c.truth for c in a] == [c.truth for c in b]
    assert [c.input for c in a] != [c.input for c in S02.draw_cases(spec, 10, 8)]
    for c in a:
        assert len(c.input["entity_ids"]) == len(set(c.input["entity_ids"])) == 40
        assert c.truth["conflicts"], "every batch holds conflicts"


def test_perfect_empty_and_malformed_agents(tiny: tuple) -> None:
    spec, ctx = tiny
    cases = S02.draw_cases(spec, 12, 7)
    _, perfect = score_run(S02, cases, agents.perfect_s02, ctx)
    assert perfect["precision"] == perfect["recall"] == perfect["resolution_accuracy"] == perfect["pass_rate"] == 1.0
    _, empty = score_run(S02, cases, agents.empty_s02, ctx)
    assert empty["recall"] == 0.0 and empty["pass_rate"] == 0.0
    rows, bad = score_run(S02, cases, agents.malformed_s02, ctx)
    assert all(not r["passed"] and r["reason"].startswith("answer.conflicts") for r in rows)
    assert bad["recall"] == 0.0 and len(rows) == 12


def test_too_few_records_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="S02 needs 100 to 2,000,000 customers, got 99"):
        S02.dataset_spec(99, 1)


def test_reference_agent_meets_targets_at_default_scale(tmp_path: Path) -> None:
    spec = S02.dataset_spec(S02.default_records, SEED)
    ctx = materialize_local(spec, tmp_path)
    cases = S02.draw_cases(spec, S02.default_cases, SEED)
    rows, m = score_run(S02, cases, S02.reference_agent(), ctx)
    for name, th in S02.thresholds.items():
        assert th.met(m[name]), (name, m[name])
    assert m["precision"] == m["recall"] == m["resolution_accuracy"] == 1.0
    patterns = {p for c in cases for p in c.attributes["patterns"]}
    assert {"tie-by-recency", "trust-over-majority", "null-in-top-tier", "three-way", "trust"} <= patterns


@pytest.mark.slow
def test_cli_run_with_the_perfect_agent(prefect_server: str, dask_local: str, tmp_path: Path) -> None:
    res = run_cli(
        [
            "run",
            "s02",
            "--records",
            "3000",
            "--cases",
            "8",
            "--agent",
            "tests.agents_issue5:perfect_s02",
            "--data-dir",
            str(tmp_path),
            "--dask-address",
            dask_local,
            "--json",
        ],
        env_extra={"PREFECT_API_URL": prefect_server},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)
    assert summary["scenario"] == "s02-conflicts" and summary["status"] == "completed" and summary["passed"] is True
    assert summary["counts"]["cases"] == 8 and summary["counts"]["failed"] == 0
    assert summary["metrics"]["precision"] == summary["metrics"]["recall"] == summary["metrics"]["resolution_accuracy"] == 1.0
    assert all(t["passed"] for t in summary["thresholds"].values())
    assert not math.isnan(summary["metrics"]["latency_p50_ms"])
