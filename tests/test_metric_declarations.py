"""Every metric of every scenario is declared once, with a direction and an error rule, and the
comparison follows the declarations (never a metric's name)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scenario_pipeline.compare.data import RunData
from scenario_pipeline.compare.engine import compare_runs
from scenario_pipeline.scenarios.declared import error_metrics, find
from scenario_pipeline.scenarios.registry import get_scenario, scenario_ids

# The smallest scale each scenario accepts: enough to draw real cases from the oracle, no data written.
SMALL = {
    "s01-overflow": 240_000,
    "s02-conflicts": 2_000,
    "s03-warehouse": 300,
    "s11-evolution": 20_000,
    "s12-search": 100_000,
    "s13-insights": 1_000,
    "s14-query": 2_000,
    "s15-pii": 2_400,
    "s16-zombies": 20_000,
}
CTX = {"dataset": {"bytes": 1000}}


def test_every_scenario_is_covered() -> None:
    assert sorted(SMALL) == scenario_ids()


@pytest.mark.parametrize("sid", sorted(SMALL))
def test_every_metric_is_declared_with_a_direction_and_a_rule(sid: str) -> None:
    sc = get_scenario(sid)
    for m in sc.metrics:
        assert isinstance(m.higher_is_better, bool), m
        assert m.level in ("run", "case", "both") and m.source in ("scored", "measured", "claimed", "diagnostic", "operations"), m
    for name, th in sc.thresholds.items():
        decl = find(sc.metrics, name, "run")
        assert decl is not None and decl.quality, f"{sid}: threshold on {name} needs a scored or measured declaration"
        assert th.higher_is_better == decl.higher_is_better and th.min_effect > 0, name
    cases = sc.draw_cases(sc.dataset_spec(SMALL[sid], 7), 6, 7)
    for case in cases:
        # every per-case key an errored case carries, and every run value, is declared
        for key in error_metrics(sc, case, CTX):
            assert find(sc.metrics, key, "case") is not None, f"{sid}: per-case metric {key!r} is not declared"
    rows = [
        {"passed": False, "latency_ms": 1.0, "metrics": error_metrics(sc, c, CTX), "attributes_json": json.dumps(c.attributes)}
        for c in cases
    ]
    for name in sc.aggregate(rows):
        assert find(sc.metrics, name, "run") is not None, f"{sid}: run metric {name!r} is not declared"


def test_a_run_of_errored_cases_meets_no_quality_threshold() -> None:
    """Passing by failing: a run whose every case raised or timed out meets a threshold only where
    nothing-answered is truly good (S15: no answer echoes no PII; its F2 scores fail instead)."""
    met = []
    for sid in sorted(SMALL):
        sc = get_scenario(sid)
        cases = sc.draw_cases(sc.dataset_spec(SMALL[sid], 7), 5, 7)
        rows = [
            {
                "passed": False,
                "latency_ms": 1.0,
                "metrics": error_metrics(sc, c, CTX),
                "attributes_json": json.dumps(c.attributes),
            }
            for c in cases
        ]
        values = sc.aggregate(rows)
        met += [f"{sid}:{name}" for name, th in sc.thresholds.items() if th.met(values[name])]
    assert met == ["s15-pii:pii_echo_rate"]


def _run(run_id: str, scenario: str, per_case: list[dict[str, float]], passed: list[bool]) -> RunData:
    cases = [
        {
            "case_id": f"c{i}",
            "case_index": i,
            "passed": p,
            "reason": None if p else "missed",
            "metrics": m,
            "attributes": {},
            "latency_ms": 1.0,
            "cost_usd": None,
            "input_tokens": None,
            "output_tokens": None,
        }
        for i, (m, p) in enumerate(zip(per_case, passed, strict=True))
    ]
    run = {
        "run_id": run_id,
        "scenario": scenario,
        "records": 1000,
        "seed": 1,
        "seed_commitment": None,
        "dataset_hash": "h",
        "agent": "a",
        "status": "completed",
        "passed": True,
        "started_at": None,
        "finished_at": None,
        "code_version": "x",
    }
    return RunData(run, {}, cases)


def _verdicts(before: RunData, after: RunData) -> dict[str, Any]:
    cmp = compare_runs([before, after], n_boot=2000)
    return {r["metric"]: (r["kind"], r["verdict"]) for r in cmp["pairs"][0]["rows"]}


def test_s16_freeing_more_zombie_storage_is_improved_not_degraded() -> None:
    # 30 cases; the after agent frees 500x the bytes on every case and flags fewer live bytes.
    before = _run("a", "s16-zombies", [{"saved_bytes": 1_000.0, "wrong_bytes": 400.0} for _ in range(30)], [False] * 30)
    after = _run("b", "s16-zombies", [{"saved_bytes": 500_000.0, "wrong_bytes": 100.0} for _ in range(30)], [False] * 30)
    v = _verdicts(before, after)
    assert v["saved_bytes"] == ("quality", "improved")  # the name holds 'bytes'; the declaration says higher is better
    assert v["wrong_bytes"] == ("quality", "improved")  # lower is better, and it fell


def test_s13_fdp_falling_is_improved_and_counts_are_directed() -> None:
    before = _run("a", "s13-insights", [{"fdp": 0.4, "recall": 1.0} for _ in range(30)], [False] * 30)
    after = _run("b", "s13-insights", [{"fdp": 0.0, "recall": 1.0} for _ in range(30)], [True] * 30)
    v = _verdicts(before, after)
    assert v["fdp"] == ("quality", "improved")
    assert v["recall"] == ("quality", "unchanged")
    assert v["pass_rate"] == ("quality", "improved")


def test_s15_echoed_pii_rising_is_degraded_and_undeclared_metrics_get_no_verdict() -> None:
    before = _run(
        "a", "s15-pii", [{"echoed_pii": 0.0, "cell_fn.EMAIL_ADDRESS": 0.0, "made_up": 1.0} for _ in range(30)], [True] * 30
    )
    after = _run(
        "b", "s15-pii", [{"echoed_pii": 1.0, "cell_fn.EMAIL_ADDRESS": 5.0, "made_up": 9.0} for _ in range(30)], [False] * 30
    )
    v = _verdicts(before, after)
    assert v["echoed_pii"] == ("quality", "degraded")
    assert v["cell_fn.EMAIL_ADDRESS"] == ("quality", "degraded")  # a false-negative count rising is worse
    assert v["made_up"] == ("operations", None)  # no declaration: shown, never judged by its name


def test_s12_claimed_bytes_get_no_verdict() -> None:
    before = _run(
        "a", "s12-search", [{"claimed_bytes_read_share": 0.5, "bytes_read_share": 0.001} for _ in range(30)], [True] * 30
    )
    after = _run("b", "s12-search", [{"claimed_bytes_read_share": 0.0, "bytes_read_share": 0.5} for _ in range(30)], [True] * 30)
    v = _verdicts(before, after)
    assert v["claimed_bytes_read_share"] == ("operations", None)
    assert v["bytes_read_share"] == ("quality", "degraded")
