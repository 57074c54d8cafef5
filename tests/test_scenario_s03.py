"""S03 warehouse context: scorer by hand; the planted catalog against the model and the questions'
truth against the catalog data; perfect, empty and malformed agents; reference; one CLI run."""

from __future__ import annotations

import json

import duckdb
import pytest

from scenario_pipeline.datasets import oracle
from scenario_pipeline.scenarios.base import Case
from scenario_pipeline.scenarios.registry import get_scenario
from scenario_pipeline.scenarios.s03_warehouse import WarehouseContext
from scenario_pipeline.scenarios.tokenizer import count_tokens
from tests import agents_issue4 as agents
from tests.helpers import run_cli
from tests.issue4_support import materialize_dataset, run_cases

A, B, KEY = "mart.sales_ab_cd_orders", "mart.web_ef_gh_clicks", "kelu_id"
JOIN_LINE = f"{A}.{KEY} = {B}.{KEY}"


def _hand_case(budget: int = 60) -> Case:
    return Case("s03-hand", 0, {"budget_tokens": budget}, {"tables": [A, B], "joins": [[A, B, KEY]], "catalog_tokens": 1000})


def test_full_answer_by_hand() -> None:
    text = f"{A}\n{B}\n{JOIN_LINE}"
    # mart|.|sales|_|ab|_|cd|_|orders = 9 tokens; the B name 9; the join line 9 + .|kelu|_|id (4)
    # + " =" (1) + 9 + 4 = 27; two newlines: 9 + 1 + 9 + 1 + 27 = 47
    assert count_tokens(text) == 47
    s = WarehouseContext().score(_hand_case(), {"context": text}, {})
    assert s.passed and s.reason is None
    assert s.metrics["table_recall"] == 1.0 and s.metrics["join_key_recall"] == 1.0 and s.metrics["table_precision"] == 1.0
    assert s.metrics["budget_compliant"] == 1.0 and s.metrics["compression_ratio"] == pytest.approx(1000 / 47)


@pytest.mark.parametrize(
    "text, table_recall, join_recall, precision",
    [
        (f"{A}, {B}", 1.0, 0.0, 1.0),  # both tables on one line, but no key: the join is not stated
        (f"{A}.{KEY}\n= {B}.{KEY}", 1.0, 0.0, 1.0),  # the join split over two lines does not count
        (f"{A} mart.other_x_y_z", 0.5, 0.0, 0.5),  # one of two needed; one of two named is needed
        (f"{A}_v2 staging.web_ef_gh_clicks", 0.0, 0.0, 0.0),  # a longer name and another layer are other tables
        ("", 0.0, 0.0, 0.0),
    ],
)
def test_partial_answers_by_hand(text: str, table_recall: float, join_recall: float, precision: float) -> None:
    s = WarehouseContext().score(_hand_case(), {"context": text}, {})
    assert not s.passed and s.reason
    assert (s.metrics["table_recall"], s.metrics["join_key_recall"], s.metrics["table_precision"]) == (
        table_recall,
        join_recall,
        precision,
    )


def test_over_budget_context_is_judged_on_what_fits() -> None:
    text = "x " * 70 + f"\n{A}\n{B}\n{JOIN_LINE}"  # "x" + 69 " x" + ...: the first 60 tokens are all x
    s = WarehouseContext().score(_hand_case(budget=60), {"context": text}, {})
    assert s.metrics["budget_compliant"] == 0.0 and s.metrics["table_recall"] == 0.0
    assert "over the 60-token budget" in s.reason


@pytest.mark.parametrize("answer", [{"context": 3}, {}, {"context": {"a": 1}}])
def test_malformed_answers_fail_with_a_reason(answer: dict) -> None:
    s = WarehouseContext().score(_hand_case(), answer, {})
    assert not s.passed and "answer.context must be a string" in s.reason
    assert s.metrics["table_recall"] == 0.0 and s.metrics["budget_compliant"] == 0.0


def test_aggregate_by_hand() -> None:
    sc = WarehouseContext()
    texts = [f"{A}\n{B}\n{JOIN_LINE}", f"{A}, {B}", f"{A} mart.other_x_y_z"]
    rows = [{"metrics": sc.score(_hand_case(), {"context": t}, {}).metrics, "passed": False, "latency_ms": 1.0} for t in texts]
    out = sc.aggregate(rows)
    assert out["table_recall"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert out["join_key_recall"] == pytest.approx((1 + 0 + 0) / 3)
    assert out["budget_compliance"] == 1.0


def test_too_small_a_catalog_is_a_usage_error() -> None:
    from scenario_pipeline.errors import UsageError

    with pytest.raises(UsageError, match="at least 30 tables"):
        WarehouseContext().dataset_spec(10, seed=1)


# -- a generated catalog -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(dask_local: str, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    sc = WarehouseContext()
    spec = sc.dataset_spec(300, seed=5)  # 100 subjects: 300 tables
    context = materialize_dataset(dask_local, spec, tmp_path_factory.mktemp("s03"))
    return sc, spec, context


def _files(context: dict, table: str) -> list[str]:
    return [f"{context['dataset']['url'][7:]}/{p['path']}" for p in context["dataset"]["manifest"]["tables"][table]["partitions"]]


def test_catalog_in_parquet_is_the_model(small: tuple) -> None:
    sc, spec, context = small
    catalog = oracle.of_kind(spec, "warehouse_catalog")
    con = duckdb.connect()
    tables = con.execute(
        "SELECT table_name, row_count, schema_name FROM read_parquet($f) ORDER BY table_id", {"f": _files(context, "wh_tables")}
    ).fetchall()
    assert tables == [(t.name, t.row_count, t.layer) for t in catalog.tables]
    assert len(tables) == 300 and len({t for t, _, _ in tables}) == 300
    n_cols = con.execute("SELECT COUNT(*) FROM read_parquet($f)", {"f": _files(context, "wh_columns")}).fetchone()[0]
    assert n_cols == catalog.column_rows
    edges = con.execute("SELECT COUNT(*) FROM read_parquet($f)", {"f": _files(context, "wh_lineage")}).fetchone()[0]
    assert edges >= 200  # raw -> staging -> mart for each of 100 subjects, plus enrichment edges


def test_question_truth_holds_in_the_catalog_data(small: tuple) -> None:
    """Recompute every question's needed joins from the Parquet catalog alone, by SQL."""
    sc, spec, context = small
    con = duckdb.connect()
    con.execute("CREATE TABLE cols AS SELECT * FROM read_parquet($f)", {"f": _files(context, "wh_columns")})
    keys = {}
    for t, k in con.execute("SELECT table_name, column_name FROM cols WHERE is_key AND table_name LIKE 'mart.%'").fetchall():
        keys.setdefault(t, set()).add(k)
    cases = sc.draw_cases(spec, 40, seed=5)
    assert {c.attributes["shape"] for c in cases} == {"direct", "star", "bridge"}
    for c in cases:
        for a, b, k in c.truth["joins"]:
            assert keys[a] & keys[b] == {k}  # exactly one shared key: the join is unambiguous
        if c.attributes["shape"] == "bridge":
            a, bridge, end = c.truth["tables"]
            assert not keys[a] & keys[end]
            linking = {t for t in keys if t not in (a, end) and keys[t] & keys[a] and keys[t] & keys[end]}
            assert linking == {bridge}
            # the question names both ends by their subject phrase and never the bridge
            assert a.split("_", 1)[1].replace("_", " ") in c.input["question"]
            assert bridge.split("_", 1)[1].replace("_", " ") not in c.input["question"]
    assert [c.input for c in cases[:10]] == [c.input for c in sc.draw_cases(spec, 10, seed=5)]  # a prefix of more cases


def test_perfect_empty_malformed_and_reference_agents(small: tuple) -> None:
    sc, spec, context = small
    cases = sc.draw_cases(spec, 20, seed=spec.seed)
    perfect = sc.aggregate(run_cases(sc, agents.perfect_s03, cases, context))
    assert perfect["table_recall"] == 1.0 and perfect["join_key_recall"] == 1.0 and perfect["budget_compliance"] == 1.0
    empty = sc.aggregate(run_cases(sc, agents.empty_s03, cases, context))
    assert empty["table_recall"] == 0.0 and empty["join_key_recall"] == 0.0
    rows = run_cases(sc, agents.malformed_s03, cases, context)
    assert all(not r["passed"] and "answer.context must be a string" in r["reason"] for r in rows)
    ref = sc.aggregate(run_cases(sc, sc.reference_agent(), cases, context))
    assert all(th.met(ref[name]) for name, th in sc.thresholds.items()), ref


@pytest.mark.slow
def test_reference_agent_meets_targets_at_default_scale(dask_local: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    sc = get_scenario("s03")
    spec = sc.dataset_spec(sc.default_records, seed=20261122)
    context = materialize_dataset(dask_local, spec, tmp_path_factory.mktemp("s03-default"))
    cases = sc.draw_cases(spec, sc.default_cases, seed=20261122)
    out = sc.aggregate(run_cases(sc, sc.reference_agent(), cases, context))
    assert all(th.met(out[name]) for name, th in sc.thresholds.items()), out
    assert out["table_recall"] == 1.0 and out["join_key_recall"] == 1.0


@pytest.mark.slow
def test_cli_run_with_a_module_agent(prefect_server: str, tmp_path) -> None:
    res = run_cli(
        [
            "run",
            "s03",
            "--records",
            "300",
            "--cases",
            "5",
            "--agent",
            "tests.agents_issue4:perfect_s03",
            "--json",
            "--data-dir",
            str(tmp_path),
        ],
        env_extra={"PREFECT_API_URL": prefect_server},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    assert summary["status"] == "completed" and summary["counts"]["passed"] == 5
    assert summary["metrics"]["table_recall"] == 1.0 and summary["metrics"]["join_key_recall"] == 1.0
