"""Alerts people can work (issue 16): list with filters, acknowledge, resolve, history, recurrence.

The same tests on both back ends: DuckDB, and Redshift's driver against a real PostgreSQL
(tests/pg_server.py), every statement of the latter checked against Redshift's rules. Alerts are
raised through the real path: a run that misses its threshold, published by deliver_or_queue
(threshold_alerts -> publish_run), or the degraded-alert writer replace_alerts. Expected values
are worked out by hand in the comments.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from scenario_pipeline.errors import UsageError
from scenario_pipeline.storage import Storage
from scenario_pipeline.tasks.publish import build_payload, deliver_or_queue
from scenario_pipeline.warehouse.base import connect
from scenario_pipeline.warehouse.redshift_rules import violations
from tests.helpers import run_cli
from tests.warehouse_support import case_table, run_row, warehouse_url

AT_ACK = datetime(2026, 12, 4, 9, 30)
AT_RESOLVE = datetime(2026, 12, 4, 10, 0)


@pytest.fixture(params=["duckdb", "redshift"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    pg = request.getfixturevalue("pg_redshift") if request.param == "redshift" else None
    return request.param, warehouse_url(request.param, tmp_path, pg)


def _miss(url: str, storage: Storage, run_id: str, minute: int, scenario: str = "s12-search", **values: float) -> None:
    """Publish a run whose metrics (target 1.0, higher is better, min_effect 0.01) are ``values``, as the flow does."""
    run = run_row(run_id, scenario=scenario, cases=1, minute=minute)
    cases = case_table(run_id, scenario, [{"passed": False, "metrics": dict(values)}])
    metrics = [
        {"metric": m, "value": v, "target": 1.0, "higher_is_better": True, "passed": v >= 1.0, "min_effect": 0.01}
        for m, v in sorted(values.items())
    ]
    assert deliver_or_queue(storage, url, build_payload(run, cases, metrics))["published"]


def _redshift_clean(kind: str, wh: Any) -> None:
    if kind == "redshift":
        assert {s[:120]: v for s in wh.statements if (v := violations(s))} == {}


def test_list_filters_ack_resolve_and_history(backend: tuple[str, str], tmp_path: Path) -> None:
    kind, url = backend
    storage = Storage.from_url(str(tmp_path / "store"))
    # r1: recall 0.85 misses 1.0 by 0.15 = 15 units of 0.01 -> critical; precision 0.995 by 0.5 units -> info.
    _miss(url, storage, "r1", 0, recall=0.85, precision=0.995)
    # r2 (another scenario): recall 0.95 misses by 5 units -> warning.
    _miss(url, storage, "r2", 1, scenario="s15-pii", recall=0.95)
    wh = connect(url)
    try:
        every = wh.list_alerts()
        assert [(a["scenario"], a["metric"], a["severity"], a["status"]) for a in every] == [
            ("s12-search", "recall", "critical", "open"),  # open, worst first
            ("s15-pii", "recall", "warning", "open"),
            ("s12-search", "precision", "info", "open"),
        ]
        assert all(a["occurrences"] == 1 and a["history"] == [] for a in every)
        assert [a["metric"] for a in wh.list_alerts(severity="critical")] == ["recall"]
        assert [a["severity"] for a in wh.list_alerts(scenario="s12-search")] == ["critical", "info"]
        assert [a["scenario"] for a in wh.list_alerts(scenario="s15-pii", severity="warning")] == ["s15-pii"]
        assert wh.list_alerts(status="resolved") == []
        crit = every[0]["alert_id"]

        acked = wh.acknowledge_alert(crit[:6], "alice", "looking at the planted needles", at=AT_ACK)  # a prefix is enough
        assert (acked["alert_id"], acked["status"], acked["acknowledged_by"], acked["acknowledged_at"]) == (
            crit,
            "acknowledged",
            "alice",
            AT_ACK,
        )
        assert acked["acknowledge_comment"] == "looking at the planted needles" and acked["resolved_by"] is None
        with pytest.raises(UsageError) as exc:
            wh.acknowledge_alert(crit, "bob")
        assert str(exc.value) == (
            f"alert {crit[:8]} is already acknowledged (by alice at 2026-12-04 09:30 UTC); "
            f"resolve it with `scenario alerts resolve {crit[:8]} --by NAME`"
        )
        resolved = wh.resolve_alert(crit, "bob", "index rebuilt", at=AT_RESOLVE)
        assert (resolved["status"], resolved["resolved_by"], resolved["resolved_at"], resolved["resolve_comment"]) == (
            "resolved",
            "bob",
            AT_RESOLVE,
            "index rebuilt",
        )
        assert (resolved["acknowledged_by"], resolved["acknowledged_at"]) == ("alice", AT_ACK)  # kept
        assert resolved["history"] == [
            {"action": "acknowledged", "acted_by": "alice", "acted_at": AT_ACK, "comment": "looking at the planted needles"},
            {"action": "resolved", "acted_by": "bob", "acted_at": AT_RESOLVE, "comment": "index rebuilt"},
        ]
        # an open alert may be resolved without an acknowledgement
        info = wh.list_alerts(severity="info")[0]["alert_id"]
        assert wh.resolve_alert(info, "carol", at=AT_RESOLVE)["history"] == [
            {"action": "resolved", "acted_by": "carol", "acted_at": AT_RESOLVE, "comment": None}
        ]
        assert [a["metric"] for a in wh.list_alerts(status="resolved")] == ["recall", "precision"]
        assert [a["scenario"] for a in wh.list_alerts(status="open")] == ["s15-pii"]
        assert wh.list_alerts(status="acknowledged") == []

        # bad transitions and ids: one line each, saying what to do
        for call, message in [
            (
                lambda: wh.acknowledge_alert(crit, "dave"),
                f"alert {crit[:8]} is already resolved (by bob at 2026-12-04 10:00 UTC)",
            ),
            (lambda: wh.resolve_alert(crit, "dave"), f"alert {crit[:8]} is already resolved (by bob at 2026-12-04 10:00 UTC)"),
            (
                lambda: wh.resolve_alert("ffffffff", "dave"),
                "no alert has an id starting 'ffffffff'; `scenario alerts` lists them",
            ),
            (lambda: wh.resolve_alert("xyz", "dave"), "alert id 'xyz' must be 4 to 64 hex digits"),
            (lambda: wh.acknowledge_alert(crit, ""), "--by must be a name of 1 to 256 printable characters"),
            (lambda: wh.list_alerts(status="closed"), "status 'closed' is not known; use one of open, acknowledged, resolved"),
            (lambda: wh.list_alerts(severity="high"), "severity 'high' is not known; use one of info, warning, critical"),
        ]:
            with pytest.raises(UsageError) as exc:
                call()
            assert message in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
        assert wh.query("SELECT COUNT(*) FROM alert_events")[0][0] == 3  # the refused actions wrote nothing

        # Republishing a run (outbox redelivery) keeps its alerts' ids and therefore their history.
        _miss(url, storage, "r1", 0, recall=0.85, precision=0.995)
        assert wh.list_alerts(severity="critical")[0]["status"] == "resolved"
        _redshift_clean(kind, wh)
    finally:
        wh.close()


def test_ambiguous_prefix_is_refused(backend: tuple[str, str]) -> None:
    kind, url = backend
    base = {"run_id": "r", "scenario": "s12-search", "records": 1000, "kind": "degraded", "severity": "warning"}
    rows = [
        {**base, "alert_id": "abcd0001" + "0" * 24, "metric": "recall", "created_at": AT_ACK, "comparison_id": "c1"},
        {**base, "alert_id": "abcd0002" + "0" * 24, "metric": "precision", "created_at": AT_ACK, "comparison_id": "c1"},
    ]
    wh = connect(url)
    try:
        wh.replace_alerts("r", "degraded", "c1", rows)
        with pytest.raises(UsageError) as exc:
            wh.acknowledge_alert("abcd", "alice")
        assert str(exc.value).startswith("alert id 'abcd' is ambiguous: 2 alerts start with it (abcd0001")
        assert wh.acknowledge_alert("ABCD0002", "alice")["metric"] == "precision"  # more digits (any case) pick one
        _redshift_clean(kind, wh)
    finally:
        wh.close()


def test_a_recurring_condition_is_one_alert_until_resolved(backend: tuple[str, str], tmp_path: Path) -> None:
    kind, url = backend
    storage = Storage.from_url(str(tmp_path / "store"))
    _miss(url, storage, "n1", 0, recall=0.9)  # 10 units -> critical
    _miss(url, storage, "n2", 1, recall=0.95)  # the same condition again, while open
    wh = connect(url)
    try:
        (only,) = wh.list_alerts()
        first = only["alert_id"]
        assert (only["run_id"], only["status"], only["occurrences"], only["last_run_id"]) == ("n1", "open", 2, "n2")
        # every run still has its own alert row (its report shows it), the second one linked to the first
        assert [a["recurrence_of"] for a in wh.alerts("n1")] == [None]
        assert [a["recurrence_of"] for a in wh.alerts("n2")] == [first]
        wh.acknowledge_alert(first, "alice", at=AT_ACK)
        with pytest.raises(UsageError, match=f"is a repeat of alert {first[:8]} and shares its status"):
            wh.resolve_alert(wh.alerts("n2")[0]["alert_id"], "bob")
    finally:
        wh.close()
    _miss(url, storage, "n2", 1, recall=0.95)  # a republished run (outbox redelivery) adds nothing
    _miss(url, storage, "n3", 2, recall=0.9)  # again, while acknowledged: still the same problem
    wh = connect(url)
    try:
        (only,) = wh.list_alerts()
        assert (only["alert_id"], only["status"], only["occurrences"], only["last_run_id"]) == (first, "acknowledged", 3, "n3")
        wh.resolve_alert(first, "bob", "fixed the index", at=AT_RESOLVE)
    finally:
        wh.close()
    _miss(url, storage, "n4", 3, recall=0.8)  # after resolution: a new alert
    _miss(url, storage, "n5", 4, precision=0.5)  # another metric: its own alert
    wh = connect(url)
    try:
        listed = wh.list_alerts()
        assert [(a["run_id"], a["metric"], a["status"], a["occurrences"]) for a in listed] == [
            ("n5", "precision", "open", 1),
            ("n4", "recall", "open", 1),
            ("n1", "recall", "resolved", 3),
        ]
        assert wh.alerts("n4")[0]["recurrence_of"] is None and listed[1]["alert_id"] != first
        # degraded alerts (written by the baseline comparison) follow the same rule, whatever the comparison
        for run_id, cmp in (("n4", "c4"), ("n5", "c5")):
            alert = {
                "alert_id": f"{cmp}{run_id}".encode().hex().ljust(32, "0"),
                "run_id": run_id,
                "scenario": "s12-search",
                "records": 1000,
                "metric": "recall",
                "kind": "degraded",
                "severity": "warning",
                "comparison_id": cmp,
                "created_at": AT_ACK,
            }
            wh.replace_alerts(run_id, "degraded", cmp, [alert])
        degraded = wh.list_alerts(status="open", severity="warning")
        assert [(a["run_id"], a["kind"], a["occurrences"], a["last_run_id"]) for a in degraded] == [("n4", "degraded", 2, "n5")]
        _redshift_clean(kind, wh)
    finally:
        wh.close()


# ---- the command line, end to end on a DuckDB file ----


def test_cli_lists_acks_and_resolves(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = f"duckdb:///{data}/warehouse.duckdb"
    storage = Storage.from_url(str(data))
    _miss(url, storage, "nightly-1", 0, recall=0.9, precision=0.995)
    wh = connect(url)
    try:
        ids = {a["metric"]: a["alert_id"] for a in wh.list_alerts()}
    finally:
        wh.close()
    dd = ["--data-dir", str(data)]

    proc = run_cli(["alerts", "--json", *dd])
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert [(a["metric"], a["severity"], a["status"]) for a in listed] == [
        ("recall", "critical", "open"),
        ("precision", "info", "open"),
    ]
    proc = run_cli(["alerts", "--json", "--severity", "info", *dd])
    assert [a["metric"] for a in json.loads(proc.stdout)] == ["precision"]

    short = ids["recall"][:6]
    proc = run_cli(["alerts", "ack", short, "--by", "alice", "--comment", "on it", *dd])
    assert proc.returncode == 0, proc.stderr
    assert f"alert {ids['recall'][:8]} (s12-search recall threshold, critical): acknowledged by alice at" in proc.stdout
    proc = run_cli(["alerts", "resolve", short, "--by", "bob", "--comment", "fixed", "--json", *dd])
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)
    assert (done["status"], done["acknowledged_by"], done["resolved_by"], done["resolve_comment"]) == (
        "resolved",
        "alice",
        "bob",
        "fixed",
    )
    assert [h["action"] for h in done["history"]] == ["acknowledged", "resolved"]
    proc = run_cli(["alerts", "--status", "open", *dd], {"COLUMNS": "200"})
    assert proc.returncode == 0 and ids["precision"][:8] in proc.stdout and ids["recall"][:8] not in proc.stdout

    for args, message in [
        (["ack", short, "--by", "carol"], f"alert {ids['recall'][:8]} is already resolved (by bob at "),
        (["resolve", short, "--by", "carol"], f"alert {ids['recall'][:8]} is already resolved (by bob at "),
        (["ack", "0000000000", "--by", "carol"], "no alert has an id starting '0000000000'"),
        (["ack", "not-an-id", "--by", "carol"], "alert id 'not-an-id' must be 4 to 64 hex digits"),
        (["resolve", short], "Missing option '--by'"),
        (["--status", "closed"], "status 'closed' is not known"),
    ]:
        proc = run_cli(["alerts", *args, *dd])
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert message in lines[0] and "Traceback" not in proc.stderr and proc.stdout == "", (message, proc.stderr)
