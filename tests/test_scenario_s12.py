"""S12 needle search: the scorer and aggregate on hand-built answers, cases from the seed."""

from __future__ import annotations

import math

import pytest

from scenario_pipeline.datasets import oracle
from scenario_pipeline.scenarios.base import Case
from scenario_pipeline.scenarios.registry import get_scenario

S12 = get_scenario("s12")
CTX = {"dataset": {"bytes": 1000}}


def _case(truth: list[int]) -> Case:
    return Case("c", 0, {"predicate": {"column": "tag", "op": "=", "value": "zq0"}}, {"record_ids": truth})


def test_score_by_hand() -> None:
    # truth {1,2,3,4}, answer {1,2,5}: hits 2 -> precision 2/3, recall 2/4, F1 = 2PR/(P+R) = (2/3)/(7/6) = 4/7
    # The harness measured 40 bytes read; the agent claims 25: the measurement is the metric, the claim is shown apart.
    measured = {**CTX, "measured": {"read_bytes": 40}}
    s = S12.score(_case([1, 2, 3, 4]), {"record_ids": [1, 2, 5], "bytes_read": 25, "partitions_opened": 3}, measured)
    assert not s.passed
    assert s.metrics["precision"] == pytest.approx(2 / 3)
    assert s.metrics["recall"] == pytest.approx(0.5)
    assert s.metrics["f1"] == pytest.approx(4 / 7)
    assert s.metrics["bytes_read_share"] == pytest.approx(40 / 1000)
    assert s.metrics["claimed_bytes_read_share"] == pytest.approx(25 / 1000)
    assert s.metrics["partitions_opened"] == 3
    # Nothing measured (an HTTP agent): no bytes_read_share at all, whatever the agent claims.
    assert "bytes_read_share" not in S12.score(_case([1]), {"record_ids": [1], "bytes_read": 0}, CTX).metrics
    assert s.reason == "found 2 of 4 needles with 1 false hits"


def test_perfect_empty_and_malformed_answers() -> None:
    perfect = S12.score(_case([7, 9]), {"record_ids": [9, 7]}, CTX)
    assert perfect.passed and perfect.metrics == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    empty = S12.score(_case([7, 9]), {"record_ids": []}, CTX)
    assert not empty.passed and empty.metrics["recall"] == 0.0 and empty.metrics["precision"] == 0.0
    for bad in ({}, {"record_ids": "7,9"}, {"record_ids": [7, "9"]}, {"record_ids": [True]}):
        s = S12.score(_case([7, 9]), bad, CTX)
        assert not s.passed and s.reason == "answer.record_ids must be a list of integers" and s.metrics["recall"] == 0.0


def test_aggregate_by_hand() -> None:
    rows = [
        {"passed": True, "latency_ms": 10.0, "metrics": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "bytes_read_share": 0.01}},
        {
            "passed": False,
            "latency_ms": 30.0,
            "metrics": {"precision": 0.5, "recall": 0.25, "f1": 1 / 3, "bytes_read_share": 0.03},
        },
        # an errored case: its declared miss values (scenarios/declared.py error_metrics)
        {"passed": False, "latency_ms": 20.0, "metrics": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "bytes_read_share": 1.0}},
    ]
    m = S12.aggregate(rows)
    assert m["precision"] == pytest.approx(1.5 / 3)  # (1 + 0.5 + 0) / 3
    assert m["recall"] == pytest.approx(1.25 / 3)  # (1 + 0.25 + 0) / 3
    assert m["bytes_read_share"] == pytest.approx(1.04 / 3)  # (0.01 + 0.03 + 1.0) / 3: the errored case counts as a full scan
    # one answered case the harness could not measure: the run's value is unmeasured (NaN), never a partial mean
    assert math.isnan(
        S12.aggregate(rows[:2] + [{"passed": True, "latency_ms": 1.0, "metrics": {"recall": 1.0}}])["bytes_read_share"]
    )
    assert m["pass_rate"] == pytest.approx(1 / 3)
    assert m["latency_p50_ms"] == 20.0
    assert m["latency_p95_ms"] == pytest.approx(29.0)  # sorted [10, 20, 30], position 0.95*2 = 1.9 -> 20 + 0.9*10
    assert math.isnan(m["partitions_opened"])  # nobody reported it


def test_cases_are_fixed_by_the_seed_and_truth_comes_from_the_oracle() -> None:
    spec = S12.dataset_spec(5_000_000, 42)
    a, b = S12.draw_cases(spec, 20, 42), S12.draw_cases(spec, 20, 42)
    assert [c.input for c in a] == [c.input for c in b]
    assert len({c.input["predicate"]["value"] for c in a}) == 20
    other = S12.draw_cases(S12.dataset_spec(5_000_000, 43), 20, 43)
    assert [c.input for c in a] != [c.input for c in other]
    planted = oracle.needles(spec)
    for c in a:
        g = planted.tokens.index(c.input["predicate"]["value"])
        assert c.truth["record_ids"] == planted.of_group(g)
        assert 1 <= len(c.truth["record_ids"]) <= 5
