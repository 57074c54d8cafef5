"""S14 natural-language questions: execution accuracy by hand, the read-only time-limited sandbox,
gold SQL against a hand computation, perfect / empty / malformed / reference agents, CLI runs."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from scenario_pipeline.datasets.manifest import read_truth
from scenario_pipeline.scenarios.base import Case
from scenario_pipeline.scenarios.query_templates import build_question
from scenario_pipeline.scenarios.registry import get_scenario
from scenario_pipeline.scenarios.s14_query import NaturalLanguageQuery
from scenario_pipeline.scenarios.sql_sandbox import database_for, normalize_value
from scenario_pipeline.storage import Storage
from tests import agents_issue4 as agents
from tests.helpers import run_cli
from tests.issue4_support import materialize_dataset, run_cases


@pytest.fixture(scope="module")
def small(dask_local: str, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    sc = NaturalLanguageQuery()
    spec = sc.dataset_spec(5000, seed=3)
    context = materialize_dataset(dask_local, spec, tmp_path_factory.mktemp("s14"))
    return sc, spec, context


def _files(context: dict) -> dict[str, list[Path]]:
    root = Path(context["dataset"]["url"][7:])
    return {t: [root / p["path"] for p in info["partitions"]] for t, info in context["dataset"]["manifest"]["tables"].items()}


def _digest(context: dict) -> dict[str, str]:
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for fs in _files(context).values() for f in fs}


def _case(template: str, slots: dict, i: int = 0) -> Case:
    q = build_question(template, slots, 0)
    return Case(f"hand-{i}", i, {"question": q.text}, {"sql": q.sql, "ordered": q.ordered, "template": template})


@pytest.mark.parametrize("records", [100, 6_000_000])
def test_out_of_range_scale_is_a_usage_error(records: int) -> None:
    from scenario_pipeline.errors import UsageError

    with pytest.raises(UsageError, match="2,000 to 5,000,000 records"):
        NaturalLanguageQuery().dataset_spec(records, seed=1)


def test_normalization_rules() -> None:
    assert normalize_value(decimal.Decimal("1.50")) == 1.5
    assert normalize_value(0.1 + 0.2) == normalize_value(0.3)  # 10 significant digits
    assert normalize_value(dt.date(2026, 3, 1)) == "2026-03-01"
    assert normalize_value(True) is True and normalize_value(None) is None and normalize_value("x") == "x"


def test_gold_sql_matches_a_hand_computation(small: tuple) -> None:
    """Total revenue of region 'east', summed in Python straight from the Parquet files."""
    sc, spec, context = small
    files = _files(context)
    stores = pq.read_table(files["stores"][0]).to_pylist()
    east = {s["store_id"] for s in stores if s["region"] == "east"}
    sales = pq.read_table(files["sales"][0], columns=["store_id", "amount"]).to_pylist()
    want = sum(decimal.Decimal(str(r["amount"])) for r in sales if r["store_id"] in east)
    got = database_for(context).run(_case("region_revenue", {"region": "east"}).truth["sql"], 10).rows
    assert got is not None and len(got) == 1
    assert float(got[0][0]) == pytest.approx(float(want), rel=1e-12)


def test_execution_accuracy_by_hand(small: tuple) -> None:
    sc, spec, context = small
    region = _case("region_revenue", {"region": "north"}, 0)
    listing = _case("category_price_list", {"category": "toys", "price": 100}, 1)
    top = _case("top_products_units", {"k": 5, "category": "books"}, 2)
    answers = [
        region.truth["sql"],  # the gold query itself: correct
        listing.truth["sql"] + " ORDER BY product_name DESC",  # other order, same set, unordered question: correct
        top.truth["sql"].replace("ORDER BY units DESC", "ORDER BY units ASC"),  # ordered question, wrong order: wrong
        "SELEC product_name FROM products",  # does not parse: an SQL error
        "DROP TABLE sales",  # not a SELECT: an SQL error, and nothing is dropped
    ]
    cases = [
        region,
        listing,
        top,
        _case("region_revenue", {"region": "west"}, 3),
        _case("region_revenue", {"region": "south"}, 4),
    ]
    before = _digest(context)
    scores = [sc.score(c, {"sql": a}, context) for c, a in zip(cases, answers, strict=True)]
    assert [s.passed for s in scores] == [True, True, False, False, False]
    assert [s.metrics["sql_error"] for s in scores] == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert "differs in the asked order" in scores[2].reason
    assert "does not parse" in scores[3].reason
    assert "only a read-only SELECT may run, got DROP" in scores[4].reason
    out = sc.aggregate([{"metrics": s.metrics, "passed": s.passed, "latency_ms": 1.0} for s in scores])
    assert out["execution_accuracy"] == pytest.approx(2 / 5)  # cases 1 and 2
    assert out["sql_error_rate"] == pytest.approx(2 / 5)  # cases 4 and 5
    assert _digest(context) == before
    assert database_for(context).run("SELECT COUNT(*) FROM sales", 10).rows == [(5000,)]


@pytest.mark.parametrize(
    "sql, message",
    [
        ("DELETE FROM sales", "got DELETE"),
        ("DROP TABLE sales", "got DROP"),
        ("UPDATE sales SET amount = 0", "got UPDATE"),
        ("INSERT INTO stores VALUES (99, 'x', 'y', 'z')", "got INSERT"),
        ("CREATE TABLE t AS SELECT 1", "got CREATE"),
        ("COPY sales TO '/tmp/stolen.csv'", "got COPY"),
        ("ATTACH '/tmp/other.duckdb'", "got ATTACH"),
        ("SELECT 1; DROP TABLE sales", "exactly one statement, got 2"),
        ("", "exactly one statement, got 0"),
    ],
)
def test_sandbox_refuses_writes(small: tuple, sql: str, message: str) -> None:
    sc, spec, context = small
    before = _digest(context)
    res = database_for(context).run(sql, 10)
    assert res.rows is None and message in res.error
    assert _digest(context) == before
    assert database_for(context).run("SELECT COUNT(*) FROM sales", 10).rows == [(5000,)]


def test_sandbox_blocks_writes_even_past_the_statement_check(small: tuple) -> None:
    """The second and third layers alone: the database is read-only and has no file access."""
    sc, spec, context = small
    cur = database_for(context).con.cursor()
    for sql in (
        "DELETE FROM sales",
        "DROP TABLE stores",
        "COPY sales TO '/tmp/stolen.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
    ):
        with pytest.raises(duckdb.Error):
            cur.execute(sql)
    assert cur.execute("SELECT COUNT(*) FROM stores").fetchone() == (40,)
    assert not Path("/tmp/stolen.csv").exists()


def test_sandbox_stops_a_slow_query(small: tuple) -> None:
    sc, spec, context = small
    res = database_for(context).run("SELECT COUNT(*) FROM range(100000000000) a WHERE a.range % 7 = 3", 0.5)
    assert res.rows is None and "longer than 0.5 s" in res.error


def test_perfect_empty_malformed_and_reference_agents(small: tuple) -> None:
    sc, spec, context = small
    cases = sc.draw_cases(spec, 40, seed=spec.seed)
    assert len({c.truth["template"] for c in cases}) == 8  # every template is drawn
    perfect = sc.aggregate(run_cases(sc, agents.perfect_s14, cases, context))
    assert perfect["execution_accuracy"] == 1.0 and perfect["sql_error_rate"] == 0.0
    empty = run_cases(sc, agents.empty_s14, cases, context)
    assert sc.aggregate(empty)["execution_accuracy"] == 0.0
    assert all("answer.sql must be a non-empty string" in r["reason"] for r in empty)
    rows = run_cases(sc, agents.malformed_s14, cases, context)
    assert all(not r["passed"] and "answer.sql" in r["reason"] for r in rows)
    ref = sc.aggregate(run_cases(sc, sc.reference_agent(), cases, context))
    assert all(th.met(ref[name]) for name, th in sc.thresholds.items()), ref


@pytest.mark.slow
def test_reference_agent_meets_targets_at_default_scale(dask_local: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    sc = get_scenario("s14")
    spec = sc.dataset_spec(sc.default_records, seed=20261122)
    context = materialize_dataset(dask_local, spec, tmp_path_factory.mktemp("s14-default"))
    cases = sc.draw_cases(spec, sc.default_cases, seed=20261122)
    out = sc.aggregate(run_cases(sc, sc.reference_agent(), cases, context))
    assert all(th.met(out[name]) for name, th in sc.thresholds.items()), out


@pytest.mark.slow
def test_cli_run_with_drop_delete_malformed_and_gold_answers(prefect_server: str, tmp_path) -> None:
    """DROP / DELETE answers fail with the reason and change nothing; the gold answers of the same
    run, scored on the same data, all pass; a malformed answer fails; the run completes."""
    res = run_cli(
        [
            "run",
            "s14",
            "--no-fail-on-threshold",
            "--records",
            "5000",
            "--cases",
            "24",
            "--json",
            "--data-dir",
            str(tmp_path),
            "--agent",
            "tests.agents_issue4:mixed_s14",
        ],
        env_extra={"PREFECT_API_URL": prefect_server},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    assert summary["status"] == "completed" and summary["counts"]["cases"] == 24
    # which answer each case got, recomputed here from the same cases
    sc = NaturalLanguageQuery()
    root = Path(summary["paths"]["dataset"][7:])
    manifest = json.loads((root / "_manifest.json").read_text())
    spec = read_truth(Storage.from_url(str(tmp_path)), manifest["name"], manifest["spec_hash"])  # the answer key, kept apart
    cases = sc.draw_cases(spec, 24, summary["seed"])
    kinds = [sum(map(ord, c.input["question"])) % 4 for c in cases]
    assert {0, 1, 2, 3} <= set(kinds)
    assert summary["counts"]["passed"] == kinds.count(3)  # every gold answer passes, nothing else does
    assert summary["metrics"]["execution_accuracy"] == pytest.approx(kinds.count(3) / 24)
    assert summary["metrics"]["sql_error_rate"] == pytest.approx((24 - kinds.count(3)) / 24)
    # the data is whole: every file's rows are there, and the tables count what the spec says
    rows = {
        t: sum(pq.ParquetFile(root / p["path"]).metadata.num_rows for p in info["partitions"])
        for t, info in manifest["tables"].items()
    }
    assert rows == {"sales": 5000, "stores": 40, "products": 200, "customers": 2000}
