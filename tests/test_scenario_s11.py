"""S11 schema evolution: scorer by hand, the written epochs against the oracle's change list, a
cross-history query by hand-written SQL, the test agents, the reference agent, one CLI run."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from scenario_pipeline.datasets import oracle
from scenario_pipeline.errors import UsageError
from scenario_pipeline.scenarios.base import Case
from scenario_pipeline.scenarios.registry import get_scenario
from scenario_pipeline.scenarios.s11_evolution.features import evaluate
from tests import agents_issue5 as agents
from tests.helpers import run_cli
from tests.issue5_support import materialize_local, score_run

S11 = get_scenario("s11")
SEED = 20261122


def _changes_case() -> Case:
    truth = [
        {"kind": "renamed", "column": "customer_id", "old_name": "customer"},
        {"kind": "widened", "column": "views", "old_name": None},
        {"kind": "added", "column": "channel", "old_name": None},
    ]
    return Case("c", 0, {"kind": "changes"}, {"changes": truth}, {"kind": "changes"})


def test_score_changes_by_hand() -> None:
    answer = {
        "changes": [
            {"kind": "renamed", "column": "customer_id", "old_name": "customer"},  # right
            {"kind": "type_changed", "column": "views"},  # it was widened: a false type change and a missed widening
            {"kind": "added", "column": "channel", "to_type": "string"},  # right
            {"kind": "dropped", "column": "coupon_code"},  # did not happen
        ]
    }
    s = S11.score(_changes_case(), answer, {})
    # 4 claimed, 3 true, 2 hits: precision 2/4, recall 2/3
    assert s.metrics["change_precision"] == pytest.approx(0.5)
    assert s.metrics["change_recall"] == pytest.approx(2 / 3)
    assert (
        s.metrics["tp_renamed"],
        s.metrics["tp_added"],
        s.metrics["fp_type_changed"],
        s.metrics["fp_dropped"],
        s.metrics["fn_widened"],
    ) == (1, 1, 1, 1, 1)
    assert s.metrics["tp_widened"] == s.metrics["fn_renamed"] == 0
    assert not s.passed and s.reason.startswith("missed 1 change(s) [('widened', 'views', None)]; 2 wrong")


def test_score_queries_by_hand() -> None:
    ints = Case("q", 1, {"kind": "query"}, {"value": 12_345}, {"kind": "query"})
    assert S11.score(ints, {"value": 12_345.0}, {}).passed  # an integer truth: within 0.5
    wrong = S11.score(ints, {"value": 12_346}, {})
    assert not wrong.passed and wrong.metrics == {"query_correct": 0.0} and wrong.reason == "answered 12346, expected 12345"
    floats = Case("q", 2, {"kind": "query"}, {"value": 1000.25}, {"kind": "query"})
    assert S11.score(floats, {"value": 1000.2500001}, {}).passed  # relative error 1e-10 <= 1e-6
    assert not S11.score(floats, {"value": 1000.3}, {}).passed


@pytest.mark.parametrize(
    "kind, answer, reason",
    [
        ("changes", {}, "answer.changes must be a list of {kind, column, old_name}"),
        (
            "changes",
            {"changes": [{"kind": "vanished", "column": "x"}]},
            "answer.changes[0] needs a kind (one of added, dropped, renamed, widened, type_changed) and a column name",
        ),
        ("changes", {"changes": [{"kind": "renamed", "column": "a"}]}, "answer.changes[0] is a rename without old_name"),
        ("query", {"value": "12"}, "answer.value must be a number"),
        ("query", {"value": True}, "answer.value must be a number"),
        ("query", {"value": float("nan")}, "answer.value must be a number"),
    ],
)
def test_malformed_answers_fail_with_a_reason(kind: str, answer: dict, reason: str) -> None:
    case = _changes_case() if kind == "changes" else Case("q", 1, {"kind": "query"}, {"value": 3}, {"kind": "query"})
    s = S11.score(case, answer, {})
    assert not s.passed and s.reason == reason


def test_aggregate_by_hand() -> None:
    def row(kind: str, metrics: dict, **attrs: int) -> dict:
        return {"passed": False, "latency_ms": 1.0, "metrics": metrics, "attributes_json": json.dumps({"kind": kind, **attrs})}

    rows = [
        row("changes", {"tp_renamed": 1, "tp_added": 1, "fp_type_changed": 1, "fp_dropped": 1, "fn_widened": 1}),
        row("changes", {}, n_added=2),  # the agent failed: both additions missed
        row("query", {"query_correct": 1.0}),
        row("query", {}),  # the agent failed: wrong
    ]
    m = S11.aggregate(rows)
    assert m["change_precision"] == pytest.approx(0.5)  # 2 hits of 2 + 2 claims
    assert m["change_recall"] == pytest.approx(0.4)  # 2 hits of 2 + 1 + 2 true changes
    assert m["recall_added"] == pytest.approx(1 / 3) and m["precision_added"] == 1.0
    assert m["precision_type_changed"] == 0.0 and m["recall_widened"] == 0.0 and m["recall_renamed"] == 1.0
    assert m["query_accuracy"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    spec = S11.dataset_spec(8000, 3)
    return spec, materialize_local(spec, tmp_path_factory.mktemp("s11"))


def _schemas(ctx: dict) -> list[tuple[str, dict[str, str]]]:
    root = Path(ctx["dataset"]["url"].removeprefix("file://"))
    out = []
    for table in sorted(ctx["dataset"]["manifest"]["tables"]):
        schema = pq.read_schema(root / table / "part-0000000.parquet")
        out.append((table, {f.name: str(f.type) for f in schema}))
    return out


def test_written_epochs_show_the_planted_changes(small: tuple) -> None:
    """Diff the written files' schemas epoch by epoch; every difference is a planted change and
    every planted change is a difference (a rename shows as one name leaving, one arriving)."""
    spec, ctx = small
    evo = oracle.of_kind(spec, "s11_schema_epochs")
    schemas = _schemas(ctx)
    assert [t for t, _ in schemas] == [e.table for e in evo.epochs] and len(schemas) == 8
    for b in range(1, 8):
        (_, before), (_, after) = schemas[b - 1], schemas[b]
        planted = [c for c in evo.changes if c.boundary == b]
        leaving = {c.column for c in planted if c.kind == "dropped"} | {c.old_name for c in planted if c.kind == "renamed"}
        arriving = {c.column for c in planted if c.kind in ("added", "renamed")}
        retyped = {c.column: c.kind for c in planted if c.kind in ("widened", "type_changed")}
        assert set(before) - set(after) == leaving and set(after) - set(before) == arriving
        assert {n for n in set(before) & set(after) if before[n] != after[n]} == set(retyped)
        for name, kind in retyped.items():
            pair = (before[name], after[name])
            assert (pair in {("int32", "int64"), ("float", "double")}) == (kind == "widened"), pair
    # seed 3 plants 10 changes, among them at least one of each kind
    assert len(evo.changes) == 10 and {c.kind for c in evo.changes} == {"added", "dropped", "renamed", "widened", "type_changed"}


def test_a_cross_history_query_by_hand_and_the_naive_union(small: tuple) -> None:
    spec, ctx = small
    evo = oracle.of_kind(spec, "s11_schema_epochs")
    root = Path(ctx["dataset"]["url"].removeprefix("file://"))
    region = [e.columns["region"][0] for e in evo.epochs]  # region, ..., sales_region after the rename
    assert region[0] == "region" and region[-1] == "sales_region"
    union = " UNION ALL ".join(
        f"SELECT \"{n}\" AS r FROM '{root / e.table}/*.parquet'" for e, n in zip(evo.epochs, region, strict=True)
    )
    with duckdb.connect() as con:
        by_hand = con.execute(f"SELECT count(*) FROM ({union}) WHERE r = 'north'").fetchone()[0]
        naive = con.execute(
            f"SELECT count(*) FROM read_parquet('{root}/orders__*/*.parquet', union_by_name=true) WHERE sales_region = 'north'"
        ).fetchone()[0]
    query = {"column": "sales_region", "aggregate": "count", "where": [{"column": "sales_region", "op": "=", "value": "north"}]}
    assert evaluate(evo, query) == by_hand
    assert 8000 / 6 * 0.8 < by_hand < 8000 / 6 * 1.2  # one region in six, over all 8,000 orders
    assert naive < by_hand / 4  # reading by the latest name alone keeps only the last epoch's rows


def test_cases_and_bad_scales(small: tuple) -> None:
    spec, _ = small
    a, b = S11.draw_cases(spec, 10, 3), S11.draw_cases(spec, 10, 3)
    assert [c.input for c in a] == [c.input for c in b] and [c.truth for c in a] == [c.truth for c in b]
    assert [c.input["kind"] for c in a] == ["changes", "query"] * 5
    with pytest.raises(UsageError, match="S11 needs 8,000 to 10,000,000 records"):
        S11.dataset_spec(7999, 1)


def test_perfect_empty_and_malformed_agents(small: tuple) -> None:
    spec, ctx = small
    cases = S11.draw_cases(spec, 12, 3)
    _, perfect = score_run(S11, cases, agents.perfect_s11, ctx)
    assert perfect["change_precision"] == perfect["change_recall"] == perfect["query_accuracy"] == perfect["pass_rate"] == 1.0
    _, empty = score_run(S11, cases, agents.empty_s11, ctx)
    assert empty["change_recall"] == 0.0
    rows, bad = score_run(S11, cases, agents.malformed_s11, ctx)
    assert all(not r["passed"] and r["reason"].startswith("answer.") for r in rows)
    assert bad["change_recall"] == 0.0 and bad["query_accuracy"] == 0.0


def test_reference_agent_meets_targets_at_default_scale(tmp_path: Path) -> None:
    spec = S11.dataset_spec(S11.default_records, SEED)
    ctx = materialize_local(spec, tmp_path)
    cases = S11.draw_cases(spec, S11.default_cases, SEED)
    _, m = score_run(S11, cases, S11.reference_agent(), ctx)
    for name, th in S11.thresholds.items():
        assert th.met(m[name]), (name, m[name])
    assert m["change_precision"] == m["change_recall"] == m["query_accuracy"] == 1.0
    for kind in ("added", "dropped", "renamed", "widened", "type_changed"):
        assert m[f"recall_{kind}"] == 1.0 and m[f"precision_{kind}"] == 1.0


@pytest.mark.slow
def test_cli_run_with_the_perfect_agent(prefect_server: str, dask_local: str, tmp_path: Path) -> None:
    res = run_cli(
        [
            "run",
            "s11",
            "--records",
            "16000",
            "--cases",
            "8",
            "--agent",
            "tests.agents_issue5:perfect_s11",
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
    assert summary["scenario"] == "s11-evolution" and summary["status"] == "completed" and summary["passed"] is True
    assert summary["counts"]["cases"] == 8 and summary["counts"]["failed"] == 0
    assert (
        summary["metrics"]["change_precision"]
        == summary["metrics"]["change_recall"]
        == summary["metrics"]["query_accuracy"]
        == 1.0
    )
