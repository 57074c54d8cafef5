"""S13 cross-asset insights: scorer and Benjamini-Hochberg by hand, the planted model against the
written data, the test agents, FDR control of the reference agent, one CLI run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from scenario_pipeline.datasets import oracle
from scenario_pipeline.errors import UsageError
from scenario_pipeline.scenarios.base import Case
from scenario_pipeline.scenarios.declared import error_metrics
from scenario_pipeline.scenarios.registry import get_scenario
from scenario_pipeline.scenarios.s13_insights.agent import benjamini_hochberg
from tests import agents_issue5 as agents
from tests.helpers import run_cli
from tests.issue5_support import materialize_local, score_run

S13 = get_scenario("s13")
SEED = 20261122


def _case(q: float = 0.1) -> Case:
    truth = {
        "relationships": [
            {"with": "web.sessions", "test": "pearson", "effect_size": 0.4},
            {"with": "web.device", "test": "anova", "effect_size": 0.02},
        ],
        "candidates": 11,
    }
    return Case("c", 0, {"measure": "crm.nps", "scope": ["web"], "q": q}, truth, {"q": q})


def test_score_by_hand() -> None:
    answer = {
        "relationships": [
            {"with": "web.sessions", "test": "pearson", "effect_size": 0.35, "p_value": 1e-6},
            {"with": "web.device", "test": "anova", "effect_size": 0.03, "p_value": 0.001},
            {"with": "web.signups", "test": "pearson", "effect_size": 0.05, "p_value": 0.01},  # not related
        ]
    }
    s = S13.score(_case(0.1), answer, {})
    # 3 claims, 2 true: precision 2/3, recall 2/2, FDP 1/3, FDP - q = 1/3 - 0.1
    assert s.metrics["precision"] == pytest.approx(2 / 3) and s.metrics["recall"] == 1.0
    assert s.metrics["fdp"] == pytest.approx(1 / 3) and s.metrics["fdp_excess"] == pytest.approx(1 / 3 - 0.1)
    # |0.35 - 0.4| = 0.05, |0.03 - 0.02| = 0.01: mean 0.03
    assert s.metrics["effect_size_error"] == pytest.approx(0.03)
    assert not s.passed and s.reason == "found 2 of 2 relationships with 1 false ones (FDP 0.333, q 0.1)"
    # at q = 0.4 the same answer passes: every relationship found, 1/3 false <= 0.4
    assert S13.score(_case(0.4), answer, {}).passed
    none = S13.score(_case(0.1), {"relationships": []}, {})
    assert none.metrics["fdp"] == 0.0 and none.metrics["recall"] == 0.0 and "effect_size_error" not in none.metrics


@pytest.mark.parametrize(
    "answer, reason",
    [
        ({}, "answer.relationships must be a list of {with, test, effect_size, p_value}"),
        ({"relationships": ["web.sessions"]}, "answer.relationships[0] is str, not an object"),
        ({"relationships": [{"effect_size": 0.3, "p_value": 0.1}]}, "answer.relationships[0] has no 'with' (asset.column)"),
        (
            {"relationships": [{"with": "web.sessions", "effect_size": "big", "p_value": 0.1}]},
            "answer.relationships[0] (web.sessions) has no finite number effect_size",
        ),
        (
            {"relationships": [{"with": "web.sessions", "effect_size": 0.3, "p_value": math.inf}]},
            "answer.relationships[0] (web.sessions) has no finite number p_value",
        ),
        (
            {"relationships": [{"with": "web.sessions", "effect_size": 0.3, "p_value": 7.0}]},
            "answer.relationships[0] (web.sessions) has p_value 7.0 outside [0, 1]",
        ),
    ],
)
def test_malformed_answers_fail_with_a_reason(answer: dict, reason: str) -> None:
    s = S13.score(_case(), answer, {})
    assert not s.passed and s.reason == reason and s.metrics["recall"] == 0.0


def test_benjamini_hochberg_by_hand() -> None:
    # m = 5, q = 0.05: sorted p 0.005 <= 0.01, 0.01 <= 0.02, 0.03 <= 0.03, 0.04 <= 0.04, 0.5 > 0.05 -> the first four
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005, 0.5], 0.05) == [True, True, True, True, False]
    # step-up: 0.03 > 0.05 * 1/2, but 0.04 <= 0.05 * 2/2, so both are rejected
    assert benjamini_hochberg([0.03, 0.04], 0.05) == [True, True]
    assert benjamini_hochberg([0.03, 0.06], 0.05) == [False, False]


def test_aggregate_by_hand() -> None:
    rows = [
        {
            "passed": True,
            "latency_ms": 1.0,
            "metrics": {
                "precision": 1.0,
                "recall": 1.0,
                "f1": 1.0,
                "fdp": 0.0,
                "q": 0.1,
                "fdp_excess": -0.1,
                "effect_size_error": 0.02,
            },
        },
        {
            "passed": False,
            "latency_ms": 1.0,
            "metrics": {
                "precision": 0.75,
                "recall": 1.0,
                "f1": 6 / 7,
                "fdp": 0.25,
                "q": 0.2,
                "fdp_excess": 0.05,
                "effect_size_error": 0.04,
            },
        },
    ]
    # the agent failed: nothing found, and the declared worst for FDP and effect-size error (not the FDP 0 of no claims)
    failed = error_metrics(S13, Case("c", 0, {"q": 0.1}, {"relationships": [{"with": "a.x", "effect_size": 0.3}]}), {})
    assert failed == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "fdp": 1.0,
        "q": 0.1,
        "fdp_excess": 1.0,
        "effect_size_error": 1.0,
    }
    rows.append({"passed": False, "latency_ms": 1.0, "metrics": failed})
    m = S13.aggregate(rows)
    assert m["fdp"] == pytest.approx(1.25 / 3) and m["q"] == pytest.approx(0.4 / 3)  # (0 + 0.25 + 1) / 3, (0.1 + 0.2 + 0.1) / 3
    assert m["fdp_excess"] == pytest.approx(0.95 / 3)  # (-0.1 + 0.05 + 1) / 3
    assert m["recall"] == pytest.approx(2 / 3)  # (1 + 1 + 0) / 3
    assert m["precision"] == pytest.approx(1.75 / 3)  # (1 + 0.75 + 0) / 3
    assert m["effect_size_error"] == pytest.approx(1.06 / 3)  # (0.02 + 0.04 + 1) / 3


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    spec = S13.dataset_spec(4000, 11)
    return spec, materialize_local(spec, tmp_path_factory.mktemp("s13"))


def _read(ctx: dict, asset: str) -> dict[str, np.ndarray]:
    tbl = pq.read_table(Path(ctx["dataset"]["url"].removeprefix("file://")) / asset / "part-0000000.parquet")
    return {n: np.asarray(tbl.column(n).to_pylist()) for n in tbl.column_names}


def test_written_data_follows_the_planted_model(small: tuple) -> None:
    """Sample correlations in the files match the model's population values: within 0.07 (over
    4 standard errors at n = 4,000) for every planted pair, and no independent pair above 0.07."""
    spec, ctx = small
    rel = oracle.of_kind(spec, "s13_relationships")
    data = {a: _read(ctx, a) for a in ("crm", "billing", "web", "support", "product", "marketing")}
    assert all((d["entity_id"] == np.arange(4000)).all() for d in data.values())
    assert len(rel.clusters) == 4 and all(len(c.members) == 8 for c in rel.clusters)
    assert sum(c.group is not None for c in rel.clusters) == 3
    checked = 0
    for c in rel.clusters:
        for m in c.members:
            name = f"{m.asset}.{m.measure}"
            x = data[m.asset][m.measure]
            for other, (test, effect) in rel.partners(name).items():
                asset, col = other.split(".")
                y = data[asset][col]
                if test == "pearson":
                    assert abs(np.corrcoef(x, y)[0, 1] - effect) < 0.07, (name, other)
                else:  # eta squared: between-level variance over total variance
                    between = sum((y == g).sum() * (x[y == g].mean() - x.mean()) ** 2 for g in np.unique(y))
                    assert abs(between / ((x - x.mean()) ** 2).sum() - effect) < 0.03, (name, other)
                checked += 1
    assert checked == 4 * 8 * 7 + 3 * 8  # every member with its 7 cluster mates, plus the 3 shifted clusters' groups
    # measures in no cluster are independent of every clustered one
    loose = [
        (a, m)
        for a, d in data.items()
        for m in d
        if m not in ("entity_id",) and not isinstance(d[m][0], str) and rel.cluster_of(f"{a}.{m}") is None
    ]
    assert len(loose) == 60 - 32
    for a, m in loose[:10]:
        for c in rel.clusters:
            member = c.members[0]
            assert abs(np.corrcoef(data[a][m], data[member.asset][member.measure])[0, 1]) < 0.07


def test_cases_and_bad_scales(small: tuple) -> None:
    spec, _ = small
    a, b = S13.draw_cases(spec, 20, 11), S13.draw_cases(spec, 20, 11)
    assert [c.input for c in a] == [c.input for c in b] and [c.truth for c in a] == [c.truth for c in b]
    assert {c.input["q"] for c in a} == {0.05, 0.1, 0.2}
    assert all(c.truth["relationships"] for c in a)  # every case has something real to find
    with pytest.raises(UsageError, match="S13 needs 200 to 1,000,000 entities, got 199"):
        S13.dataset_spec(199, 1)


def test_perfect_empty_and_malformed_agents(small: tuple) -> None:
    spec, ctx = small
    cases = S13.draw_cases(spec, 15, 11)
    _, perfect = score_run(S13, cases, agents.perfect_s13, ctx)
    assert perfect["precision"] == perfect["recall"] == perfect["pass_rate"] == 1.0
    assert perfect["fdp"] == 0.0 and perfect["effect_size_error"] == 0.0
    _, empty = score_run(S13, cases, agents.empty_s13, ctx)
    assert empty["recall"] == 0.0 and empty["fdp"] == 0.0
    rows, bad = score_run(S13, cases, agents.malformed_s13, ctx)
    assert all(not r["passed"] and r["reason"].startswith("answer.relationships") for r in rows)
    assert bad["recall"] == 0.0


def test_reference_agent_controls_the_fdr_at_default_scale(tmp_path: Path) -> None:
    spec = S13.dataset_spec(S13.default_records, SEED)
    ctx = materialize_local(spec, tmp_path)
    cases = S13.draw_cases(spec, S13.default_cases, SEED)
    rows, m = score_run(S13, cases, S13.reference_agent(), ctx)
    for name, th in S13.thresholds.items():
        assert th.met(m[name]), (name, m[name])
    assert m["recall"] == 1.0
    # averaged over the cases of each q, the observed false discovery proportion stays at or below q
    for q in (0.05, 0.1, 0.2):
        fdps = [r["metrics"]["fdp"] for r, c in zip(rows, cases, strict=True) if c.input["q"] == q]
        assert len(fdps) >= 30 and sum(fdps) / len(fdps) <= q, (q, sum(fdps) / len(fdps))
    assert m["fdp"] <= m["q"] - 0.03  # with a margin


@pytest.mark.slow
def test_cli_run_with_the_perfect_agent(prefect_server: str, dask_local: str, tmp_path: Path) -> None:
    res = run_cli(
        [
            "run",
            "s13",
            "--records",
            "1000",
            "--cases",
            "8",
            "--agent",
            "tests.agents_issue5:perfect_s13",
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
    assert summary["scenario"] == "s13-insights" and summary["status"] == "completed" and summary["passed"] is True
    assert summary["counts"]["cases"] == 8 and summary["counts"]["failed"] == 0
    assert summary["metrics"]["precision"] == summary["metrics"]["recall"] == 1.0 and summary["metrics"]["fdp"] == 0.0
