"""One module, both back ends: DuckDB, and Redshift's driver against a real PostgreSQL (tests/pg_server.py).

Every expected number is worked out by hand in the comments from the tiny hand-built runs.
"""

from __future__ import annotations

import math

import pytest

from scenario_pipeline.compare.data import load_run
from scenario_pipeline.compare.engine import compare_runs
from scenario_pipeline.errors import UsageError, WarehouseError
from scenario_pipeline.storage import Storage
from scenario_pipeline.tasks.publish import build_payload, deliver_or_queue
from scenario_pipeline.warehouse import outbox
from scenario_pipeline.warehouse.base import connect
from scenario_pipeline.warehouse.schema import MIGRATIONS, TABLES
from tests.warehouse_support import S12_THRESHOLDS, WarehouseDown, case_table, publish, run_row, warehouse_url

BACKENDS = ["duckdb", "redshift"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path) -> tuple[str, str, object]:  # noqa: ANN001
    """(kind, fresh warehouse URL, the PostgreSQL server or None)."""
    pg = request.getfixturevalue("pg_redshift") if request.param == "redshift" else None
    return request.param, warehouse_url(request.param, tmp_path, pg), pg


def _cases(spec: list[tuple[bool, float]], **extra: object) -> list[dict]:
    """(passed, recall) per case; precision is 1.0 everywhere."""
    return [{"passed": p, "metrics": {"recall": r, "precision": 1.0}, **extra} for p, r in spec]


def test_migrations_are_versioned_and_safe_to_repeat(backend) -> None:  # noqa: ANN001
    kind, url, _ = backend
    wh = connect(url)
    try:
        versions = sorted(v for v, _, _ in MIGRATIONS)
        assert versions[:2] == [1, 2]  # this issue's; later ones (other issues') add to them
        assert wh.schema_version() == versions[-1]
        assert wh.migrate() == versions[-1]  # a second time: nothing applied again
        assert wh.query("SELECT COUNT(*) FROM schema_migrations")[0][0] == len(versions)
        for table in TABLES:
            assert wh.query(f"SELECT COUNT(*) FROM {table}")[0][0] == 0
    finally:
        wh.close()
    wh = connect(url)  # a new connection migrates again: still each version once
    try:
        assert [v for (v,) in wh.query("SELECT version FROM schema_migrations ORDER BY version")] == versions
    finally:
        wh.close()


def test_publish_twice_leaves_one_copy(backend, tmp_path) -> None:  # noqa: ANN001
    kind, url, _ = backend
    storage = Storage.from_url(str(tmp_path / "store"))
    run = run_row("r1", cases=3)
    cases = case_table("r1", "s12-search", _cases([(True, 1.0), (False, 0.5), (True, 1.0)], cost_usd=0.25, input_tokens=100))
    # recall: mean (1 + 0.5 + 1) / 3 = 0.8333, target 1.0 missed by 0.1667 = 16.7 min_effects of 0.01 -> critical alert
    metrics = [
        {"metric": "recall", "value": 2.5 / 3, "target": 1.0, "higher_is_better": True, "passed": False, "min_effect": 0.01},
        {"metric": "pass_rate", "value": 2 / 3, "target": None, "higher_is_better": None, "passed": None, "min_effect": None},
    ]
    for _ in range(2):
        result = deliver_or_queue(storage, url, build_payload(run, cases, metrics))
        assert result["published"] and result["case_rows"] == 3
    wh = connect(url)
    try:
        # one run row, 3 cases, 2 metrics, 1 threshold alert, 3 cost lines (input tokens, output tokens, cases)
        assert wh.counts("r1") == {"runs": 1, "case_results": 3, "scenario_metrics": 2, "alerts": 1, "costs": 3}
        alert = wh.alerts("r1")[0]
        assert (alert["metric"], alert["kind"], alert["severity"]) == ("recall", "threshold", "critical")
        costs = {c["item"]: c for c in wh.rows("SELECT item, quantity, amount_usd FROM costs WHERE run_id = ?", ["r1"])}
        assert costs["input_tokens"]["quantity"] == 300  # 3 cases x 100 tokens
        assert costs["cases"]["amount_usd"] == pytest.approx(0.75)  # 3 x 0.25 USD
        back = wh.case_rows("r1")
        assert [c["passed"] for c in back] == [True, False, True]
        assert [c["case_index"] for c in back] == [0, 1, 2]
    finally:
        wh.close()


def test_quotes_and_semicolons_are_stored_verbatim(backend) -> None:  # noqa: ANN001
    kind, url, _ = backend
    run_id = "it's\"; DROP TABLE runs; --"
    scenario = "s'12;\" OR '1'='1"
    wh = connect(url)
    try:
        publish(wh, run_id, _cases([(True, 1.0), (False, 0.0)]), scenario=scenario)
        publish(wh, "plain", _cases([(True, 1.0)]), scenario=scenario, minute=1)
        assert wh.get_run(run_id)["scenario"] == scenario
        assert [r["run_id"] for r in wh.history(scenario, 1000)] == [run_id, "plain"]
        assert wh.counts(run_id)["case_results"] == 2
        assert wh.query("SELECT COUNT(*) FROM runs")[0][0] == 2  # the table survived
        assert {c["run_id"] for c in wh.case_rows(run_id)} == {run_id}
    finally:
        wh.close()


def test_outbox_keeps_rows_while_down_and_delivers_exactly_once(backend, tmp_path) -> None:  # noqa: ANN001
    kind, url, pg = backend
    storage = Storage.from_url(str(tmp_path / "store"))
    connect(url).close()  # the warehouse exists; now it goes down
    run1 = run_row("down-1", cases=4)
    cases1 = case_table("down-1", "s12-search", _cases([(True, 1.0)] * 3 + [(False, 0.5)]))
    metrics = [{"metric": "recall", "value": 0.875, "target": 1.0, "higher_is_better": True, "passed": False, "min_effect": 0.01}]
    with WarehouseDown(kind, url, pg):
        with pytest.raises(WarehouseError):
            connect(url)
        result = deliver_or_queue(storage, url, build_payload(run1, cases1, metrics))
    assert not result["published"] and result["case_rows"] == 0
    assert outbox.pending(storage) == ["down-1"]
    assert storage.exists("runs/down-1/outbox/cases.parquet")
    # The warehouse is back. The next run publishes itself and delivers the waiting one.
    run2 = run_row("next-2", cases=2, minute=5)
    cases2 = case_table("next-2", "s12-search", _cases([(True, 1.0), (True, 1.0)]))
    result = deliver_or_queue(storage, url, build_payload(run2, cases2, []))
    assert result["published"] and [d["run_id"] for d in result["delivered"]] == ["down-1"]
    assert outbox.pending(storage) == [] and not storage.exists("runs/down-1/outbox")
    wh = connect(url)
    try:
        assert wh.counts("down-1") == {"runs": 1, "case_results": 4, "scenario_metrics": 1, "alerts": 1, "costs": 3}
        assert wh.counts("next-2")["case_results"] == 2
        # Redelivering by hand finds nothing waiting, and the rows are still exactly once.
        with pytest.raises(UsageError, match="no rows of run 'down-1' wait"):
            outbox.deliver(storage, "down-1")
        assert wh.query("SELECT COUNT(*) FROM case_results")[0][0] == 6  # 4 + 2
    finally:
        wh.close()


def _improved_pair(wh) -> None:  # noqa: ANN001
    # A: 70 cases pass with recall 1.0; 30 fail with recall 0.5. B: all 100 pass with recall 1.0.
    before = _cases([(True, 1.0)] * 70 + [(False, 0.5)] * 30)
    after = _cases([(True, 1.0)] * 100)
    publish(wh, "A", before, thresholds=S12_THRESHOLDS)
    publish(wh, "B", after, thresholds=S12_THRESHOLDS, minute=5)


def _binomial_quantile(n: int, p: float, q: float) -> int:
    """Smallest k with P[Bin(n, p) <= k] >= q, from the binomial formula."""
    acc = 0.0
    for k in range(n + 1):
        acc += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if acc >= q:
            return k
    return n


def test_comparison_statistics_by_hand(backend) -> None:  # noqa: ANN001
    kind, url, _ = backend
    wh = connect(url)
    try:
        _improved_pair(wh)
        cmp = compare_runs([load_run(wh, "A"), load_run(wh, "B")])
        rows = {r["metric"]: r for r in cmp["pairs"][0]["rows"]}
        # pass_rate: 0.70 -> 1.00. McNemar: b = 0 (pass->fail), c = 30 (fail->pass): p = 2 * 0.5^30 = 1.8626e-09.
        pr = rows["pass_rate"]
        assert (pr["before_value"], pr["after_value"], pr["diff"]) == pytest.approx((0.7, 1.0, 0.3))
        assert pr["test"] == "mcnemar-exact" and pr["p_value"] == pytest.approx(2 * 0.5**30)
        # Holm over 3 quality metrics (pass_rate, precision, recall): the smallest p is multiplied by 3.
        assert pr["p_adjusted"] == pytest.approx(3 * 2 * 0.5**30)
        # Bootstrap of the mean of 100 differences, 30 of them 1 and 70 of them 0: the resampled mean is Bin(100, 0.3)/100;
        # its 2.5% and 97.5% quantiles are 21/100 and 39/100 (binomial formula); 10,000 resamples land within 0.015.
        lo, hi = _binomial_quantile(100, 0.3, 0.025) / 100, _binomial_quantile(100, 0.3, 0.975) / 100
        assert (lo, hi) == (0.21, 0.39)
        assert pr["ci_low"] == pytest.approx(lo, abs=0.015) and pr["ci_high"] == pytest.approx(hi, abs=0.015)
        assert pr["verdict"] == "improved"
        # recall: 0.85 -> 1.00 (0.7 * 1 + 0.3 * 0.5 = 0.85); the differences are 0.5 on 30 cases: interval 0.5 * [0.21, 0.39].
        rc = rows["recall"]
        assert rc["diff"] == pytest.approx(0.15)
        assert rc["ci_low"] == pytest.approx(0.105, abs=0.008) and rc["ci_high"] == pytest.approx(0.195, abs=0.008)
        # Wilcoxon, 30 tied non-zero differences: W+ = 1 + ... + 30 = 465, mean 232.5,
        # var = 30*31*61/24 - (30^3 - 30)/48 = 2363.75 - 561.875 = 1801.875; z = (465 - 232.5 - 0.5)/sqrt(1801.875) = 5.4655
        z = (465 - 232.5 - 0.5) / math.sqrt(1801.875)
        assert rc["test"] == "wilcoxon-normal" and rc["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)))
        assert rc["verdict"] == "improved"
        # precision: 1.0 everywhere -> difference 0, interval [0, 0], inside +/- min_effect 0.01 -> unchanged.
        assert (rows["precision"]["ci_low"], rows["precision"]["ci_high"], rows["precision"]["verdict"]) == (
            0.0,
            0.0,
            "unchanged",
        )
        # The other way round, the same numbers say degraded.
        back = {r["metric"]: r for r in compare_runs([load_run(wh, "B"), load_run(wh, "A")])["pairs"][0]["rows"]}
        assert back["recall"]["verdict"] == back["pass_rate"]["verdict"] == "degraded"
        assert back["recall"]["diff"] == pytest.approx(-0.15)
    finally:
        wh.close()


def test_all_equal_is_unchanged_and_small_sample_is_inconclusive(backend) -> None:  # noqa: ANN001
    kind, url, _ = backend
    wh = connect(url)
    try:
        same = _cases([(True, 1.0)] * 8 + [(False, 0.5)] * 2)
        publish(wh, "E1", same, thresholds=S12_THRESHOLDS)
        publish(wh, "E2", same, thresholds=S12_THRESHOLDS, minute=1)
        rows = compare_runs([load_run(wh, "E1"), load_run(wh, "E2")])["pairs"][0]["rows"]
        for r in (r for r in rows if r["kind"] == "quality"):
            # Every paired difference is 0: interval [0, 0], p = 1, verdict unchanged.
            assert (r["diff"], r["ci_low"], r["ci_high"], r["p_value"], r["verdict"]) == (0.0, 0.0, 0.0, 1.0, "unchanged"), r[
                "metric"
            ]
        # Three cases, each failing before (recall 0.2, 0.5, 0.9 found) and passing after (recall 1.0).
        publish(wh, "S1", _cases([(False, 0.2), (False, 0.5), (False, 0.9)]), records=10, thresholds=S12_THRESHOLDS)
        publish(wh, "S2", _cases([(True, 1.0)] * 3), records=10, thresholds=S12_THRESHOLDS, minute=1)
        rows = {r["metric"]: r for r in compare_runs([load_run(wh, "S1"), load_run(wh, "S2")])["pairs"][0]["rows"]}
        # McNemar: c = 3 discordant, all one way: p = 2 * 0.5^3 = 0.25. Not significant -> inconclusive.
        assert rows["pass_rate"]["p_value"] == pytest.approx(0.25) and rows["pass_rate"]["verdict"] == "inconclusive"
        # Wilcoxon exact on differences 0.8, 0.5, 0.1 (no ties): W- = 0, P[W <= 0] = 1/8, p = 2/8 = 0.25 -> inconclusive.
        assert rows["recall"]["test"] == "wilcoxon-exact" and rows["recall"]["p_value"] == pytest.approx(0.25)
        assert rows["recall"]["verdict"] == "inconclusive"
        assert rows["recall"]["diff"] == pytest.approx((0.8 + 0.5 + 0.1) / 3)
    finally:
        wh.close()


def test_runs_must_share_scenario_scale_and_seed(backend) -> None:  # noqa: ANN001
    kind, url, _ = backend
    wh = connect(url)
    try:
        cases = _cases([(True, 1.0)] * 3)
        publish(wh, "base", cases)
        publish(wh, "other-seed", cases, seed=8)
        publish(wh, "other-scale", cases, records=2000)
        publish(wh, "other-scenario", cases, scenario="s01-overflow")
        for other, what in (
            ("other-seed", "seed: 7 vs 8"),
            ("other-scale", "records: 1000 vs 2000"),
            ("other-scenario", "scenario"),
        ):
            with pytest.raises(UsageError, match="did not run the same cases") as exc:
                compare_runs([load_run(wh, "base"), load_run(wh, other)])
            assert what in str(exc.value)
        with pytest.raises(UsageError, match="more than once"):
            compare_runs([load_run(wh, "base"), load_run(wh, "base")])
        with pytest.raises(UsageError, match="not in the warehouse"):
            load_run(wh, "no-such-run")
    finally:
        wh.close()


def test_three_runs_make_one_table(backend) -> None:  # noqa: ANN001
    kind, url, _ = backend
    wh = connect(url)
    try:
        _improved_pair(wh)
        publish(wh, "C", _cases([(True, 1.0)] * 70 + [(False, 0.5)] * 30), thresholds=S12_THRESHOLDS, minute=9)  # same as A
        cmp = compare_runs([load_run(wh, r) for r in ("A", "B", "C")])
        table = {e["metric"]: e for e in cmp["table"]}
        cells = {c["run_id"]: c for c in table["recall"]["cells"]}
        assert table["recall"]["reference_value"] == pytest.approx(0.85)
        assert cells["B"]["after_value"] == pytest.approx(1.0) and cells["B"]["verdict"] == "improved"
        assert cells["C"]["diff"] == 0.0 and cells["C"]["verdict"] == "unchanged"
        # Holm's family now spans both pairs: 2 pairs x 3 quality metrics = 6 p-values; the smallest is multiplied by 6.
        pr_b = next(r for r in cmp["pairs"][0]["rows"] if r["metric"] == "pass_rate")
        assert pr_b["p_adjusted"] == pytest.approx(6 * 2 * 0.5**30)
    finally:
        wh.close()


def test_degraded_run_against_baseline_raises_an_alert(backend) -> None:  # noqa: ANN001
    from scenario_pipeline.compare.baseline import compare_to_baseline
    from scenario_pipeline.compare.gate import decision_row, evidence

    kind, url, _ = backend
    wh = connect(url)
    try:
        publish(wh, "good", _cases([(True, 1.0)] * 100), thresholds=S12_THRESHOLDS)
        wh.record_decision(decision_row(evidence(wh, "good"), "approved", "thresholds", "tester", "first", None))
        publish(wh, "worse", _cases([(True, 1.0)] * 70 + [(False, 0.5)] * 30), thresholds=S12_THRESHOLDS, minute=5)
    finally:
        wh.close()
    assert compare_to_baseline(url, {"run_id": "good"}) is None  # the baseline itself: nothing to compare
    summary = compare_to_baseline(url, {"run_id": "worse"})
    assert summary["baseline_run_id"] == "good"
    assert summary["verdicts"]["recall"] == "degraded" and summary["verdicts"]["precision"] == "unchanged"
    wh = connect(url)
    try:
        alerts = {a["metric"]: a for a in wh.alerts("worse") if a["kind"] == "degraded"}
        # recall fell by 0.15 = 15 min_effects of 0.01 -> critical; pass_rate declares no min_effect: 1% of 1.0 -> 30 units -> critical
        assert set(alerts) == {"recall", "pass_rate"}
        assert alerts["recall"]["severity"] == "critical" and alerts["recall"]["baseline_run_id"] == "good"
        assert alerts["recall"]["value"] == pytest.approx(0.85) and alerts["recall"]["target"] == pytest.approx(1.0)
        # Comparing again replaces the stored comparison and alerts instead of adding to them.
        compare_to_baseline(url, {"run_id": "worse"})
        assert len([a for a in wh.alerts("worse") if a["kind"] == "degraded"]) == 2
        assert wh.query("SELECT COUNT(*) FROM comparisons WHERE run_b = ?", ["worse"])[0][0] == len(
            wh.comparison(summary["comparison_id"])
        )
    finally:
        wh.close()


def _promote_ready(wh) -> None:  # noqa: ANN001
    publish(wh, "good", _cases([(True, 1.0)] * 100), thresholds=S12_THRESHOLDS)
    publish(wh, "worse", _cases([(True, 1.0)] * 70 + [(False, 0.5)] * 30), thresholds=S12_THRESHOLDS, minute=5)


@pytest.mark.slow
def test_gate_without_a_person_lets_the_thresholds_decide(backend, prefect_server) -> None:  # noqa: ANN001
    from scenario_pipeline.flows.promote_baseline import promote_baseline

    kind, url, _ = backend
    wh = connect(url)
    try:
        _promote_ready(wh)
    finally:
        wh.close()
    first = promote_baseline(run_id="good", warehouse_url=url, interactive=False, decided_by="ci-bot")
    assert (first["decision"], first["mode"], first["baseline"], first["previous_baseline"]) == (
        "approved",
        "thresholds",
        "good",
        None,
    )
    # 'worse' misses recall >= 1.0 (0.85) and is degraded against 'good': rejected, baseline unchanged.
    second = promote_baseline(run_id="worse", warehouse_url=url, interactive=False, decided_by="ci-bot")
    assert (second["decision"], second["baseline"], second["previous_baseline"]) == ("rejected", "good", "good")
    assert "recall = 0.85 misses its threshold >= 1" in second["comment"]
    assert "recall is degraded against the baseline 'good'" in second["comment"]
    wh = connect(url)
    try:
        rows = wh.decisions()
        assert [(d["run_id"], d["decision"], d["mode"], d["decided_by"]) for d in rows] == [
            ("good", "approved", "thresholds", "ci-bot"),
            ("worse", "rejected", "thresholds", "ci-bot"),
        ]
        assert wh.get_baseline("s12-search", 1000)["run_id"] == "good"
        with pytest.raises(UsageError, match="already is the baseline"):
            from scenario_pipeline.compare.gate import evidence

            evidence(wh, "good")
    finally:
        wh.close()


@pytest.mark.slow
def test_gate_with_a_person_waits_for_an_answer_through_the_prefect_api(backend, prefect_server, tmp_path) -> None:  # noqa: ANN001
    """The CLI's flow run pauses; the 'person' answers through Prefect's API (as the UI does) with approve + comment."""
    import os
    import subprocess
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    from tests.helpers import REPO, VENV_BIN

    kind, url, _ = backend
    wh = connect(url)
    try:
        _promote_ready(wh)
    finally:
        wh.close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "scenario"),
            "baseline",
            "promote",
            "worse",
            "--interactive",
            "--warehouse",
            url,
            "--poll-interval",
            "1",
            "--timeout",
            "120",
            "--json",
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        paused, deadline = None, time.monotonic() + 90
        with get_client(sync_client=True) as client:
            while paused is None and time.monotonic() < deadline:
                runs = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
                )
                paused = next(
                    (r for r in runs if r.parameters.get("run_id") == "worse" and r.parameters.get("warehouse_url") == url), None
                )
                time.sleep(0.5)
        assert paused is not None, proc.stderr.read() if proc.poll() is not None else "no paused flow run"
        # The form's schema is saved just after the pause; resume once the server accepts our answer.
        answer = {"approve": True, "comment": "known gap in last-1% partitions; accepted for now", "reviewer": "alice"}
        for _ in range(40):
            try:
                resume_flow_run(paused.id, run_input=answer)
                break
            except Exception:  # noqa: BLE001 - the input schema is not stored yet
                time.sleep(0.5)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    result = __import__("json").loads(out)
    # The person overrode the thresholds' recommendation (reject), and that is what was stored.
    assert (result["decision"], result["mode"], result["decided_by"], result["recommendation"]) == (
        "approved",
        "interactive",
        "alice",
        "reject",
    )
    wh = connect(url)
    try:
        d = wh.decisions("worse")[0]
        assert (d["decision"], d["decided_by"], d["comment"], d["flow_run_id"]) == (
            "approved",
            "alice",
            answer["comment"],
            str(paused.id),
        )
        assert wh.get_baseline("s12-search", 1000)["run_id"] == "worse"
    finally:
        wh.close()
