"""S16 zombie tables: scorer by hand, the written catalog and log against the oracle (with the
rule as SQL written here), the traps, the test agents, the reference agent, one CLI run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from scenario_pipeline.datasets.catalog import build_spec
from scenario_pipeline.errors import UsageError
from scenario_pipeline.scenarios.base import Case
from scenario_pipeline.scenarios.declared import error_metrics
from scenario_pipeline.scenarios.registry import get_scenario
from scenario_pipeline.scenarios.s16_zombies.catalog_plan import schema_names
from tests import agents_issue5 as agents
from tests.helpers import run_cli
from tests.issue5_support import materialize_local, score_run

S16 = get_scenario("s16")
SEED = 20261122


def _case() -> Case:
    truth = {
        "zombies": [
            {"table": "s.a", "bytes": 100, "last_access": "2026-01-10T05:00:00+00:00"},
            {"table": "s.b", "bytes": 300, "last_access": None},
        ],
        "sizes": {"s.a": 100, "s.b": 300, "s.c": 50, "s.d": 7},
    }
    return Case("c", 0, {"schema": "s"}, truth, {"zombie_bytes": 400})


def test_score_by_hand() -> None:
    answer = {
        "zombies": [
            {"table": "s.a", "reason": "idle", "last_access": "2026-01-10"},
            {"table": "s.c", "reason": "idle", "last_access": None},
        ]
    }
    s = S16.score(_case(), answer, {})
    # claimed {a, c}, truth {a, b}: precision 1/2, recall 1/2, F1 1/2
    assert s.metrics["precision"] == s.metrics["recall"] == s.metrics["f1"] == pytest.approx(0.5)
    # storage: a's 100 bytes of the zombies' 100 + 300 = 400 -> 0.25; c's 50 bytes flagged wrongly
    assert s.metrics["storage_recall"] == pytest.approx(0.25)
    assert s.metrics["saved_bytes"] == 100 and s.metrics["zombie_bytes"] == 400 and s.metrics["wrong_bytes"] == 50
    # 2026-01-10 (midnight UTC) is 5 hours from the true last access: within a day -> right
    assert s.metrics["last_access_accuracy"] == 1.0
    assert not s.passed and s.reason == "found 1 of 2 zombies with 1 live tables flagged"


@pytest.mark.parametrize(
    "answer, reason",
    [
        ({}, "answer.zombies must be a list of {table, reason, last_access}"),
        ({"zombies": ["s.a"]}, "answer.zombies[0] has no table name"),
        ({"zombies": [{"table": 5, "reason": "old"}]}, "answer.zombies[0] has no table name"),
        ({"zombies": [{"table": "s.a"}]}, "answer.zombies[0] (s.a) gives no reason"),
        ({"zombies": [{"table": "s.a", "reason": "  "}]}, "answer.zombies[0] (s.a) gives no reason"),
    ],
)
def test_malformed_answers_fail_with_a_reason(answer: dict, reason: str) -> None:
    s = S16.score(_case(), answer, {})
    assert not s.passed and s.reason == reason and s.metrics["recall"] == 0.0 and s.metrics["zombie_bytes"] == 400


def test_aggregate_by_hand() -> None:
    rows = [
        {
            "passed": False,
            "latency_ms": 1.0,
            "attributes_json": json.dumps({"zombie_bytes": 400}),
            "metrics": {
                "precision": 0.5,
                "recall": 0.5,
                "f1": 0.5,
                "saved_bytes": 100.0,
                "zombie_bytes": 400.0,
                "wrong_bytes": 50.0,
            },
        },
    ]
    # timed out on a case with 600 bytes of zombies: a miss everywhere, and no wrong bytes (it flagged nothing)
    truth = {"zombies": [{"table": "t_old", "bytes": 600, "last_access": None}], "sizes": {"t_old": 600}}
    timed_out = error_metrics(S16, Case("c", 0, {}, truth), {})
    assert timed_out == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "storage_recall": 0.0,
        "zombie_bytes": 600.0,
        "saved_bytes": 0.0,
        "wrong_bytes": 0.0,
        "last_access_accuracy": 0.0,
    }
    rows.append({"passed": False, "latency_ms": 3.0, "attributes_json": json.dumps({"zombie_bytes": 600}), "metrics": timed_out})
    m = S16.aggregate(rows)
    assert m["recall"] == pytest.approx(0.25)  # (0.5 + 0) / 2
    assert m["precision"] == pytest.approx(0.25)  # (0.5 + 0) / 2: an errored case counts against precision too
    assert m["storage_recall"] == pytest.approx(0.1)  # 100 saved of 400 + 600 bytes of zombies
    assert m["saved_bytes_per_case"] == pytest.approx(50.0) and m["wrong_bytes_per_case"] == pytest.approx(25.0)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    # the log in 4 partitions (6,000 rows each, the last 2,000): planting works partition by partition
    spec = build_spec("s16_catalog", records=20_000, seed=5, partition_rows=6_000)
    assert spec.partitions_of("query_log") == 4 and spec.partitions_of("objects") == 1
    return spec, materialize_local(spec, tmp_path_factory.mktemp("s16"))


def _files(ctx: dict, table: str) -> str:
    return str(Path(ctx["dataset"]["url"].removeprefix("file://")) / table / "*.parquet")


def _zombies_by_sql(ctx: dict, schema: str, as_of: datetime, idle: int, lineage: bool = True, created: bool = True) -> set[str]:
    """The documented rule, written again as plain SQL over the written files."""
    cutoff = as_of - timedelta(days=idle)
    sql = f"""
        SELECT o.name FROM '{_files(ctx, "objects")}' o
        WHERE o.schema_name = $schema AND o.kind = 'table'
          {"AND o.created_at <= $cutoff" if created else ""}
          AND NOT EXISTS (SELECT 1 FROM '{_files(ctx, "query_log")}' l WHERE l.object = o.name AND l.ts > $cutoff AND l.ts <= $as_of)
          {f"AND NOT EXISTS (SELECT 1 FROM '{_files(ctx, 'lineage')}' e WHERE e.upstream = o.name)" if lineage else ""}
    """
    with duckdb.connect() as con:
        return {r[0] for r in con.execute(sql, {"schema": schema, "as_of": as_of, "cutoff": cutoff}).fetchall()}


def test_written_data_follows_the_oracle(small: tuple) -> None:
    spec, ctx = small
    checked = 0
    for case in S16.draw_cases(spec, 36, 5):
        inp = case.input
        as_of = datetime.fromisoformat(inp["as_of"])
        assert _zombies_by_sql(ctx, inp["schema"], as_of, inp["idle_days"]) == {z["table"] for z in case.truth["zombies"]}
        checked += len(case.truth["zombies"])
    assert checked > 36  # the slices hold zombies


def test_the_traps_catch_a_careless_rule(small: tuple) -> None:
    """Without lineage, tables read only through a view or a job look dead; without the creation
    date, tables too new to judge do."""
    spec, ctx = small
    as_of = datetime(2027, 1, 1, tzinfo=UTC)
    schemas = schema_names(240)  # 20,000 records: 240 objects in 4 schemas
    truth = set().union(*(_zombies_by_sql(ctx, s, as_of, 120) for s in schemas))
    no_lineage = set().union(*(_zombies_by_sql(ctx, s, as_of, 120, lineage=False) for s in schemas))
    no_created = set().union(*(_zombies_by_sql(ctx, s, as_of, 120, created=False) for s in schemas))
    assert truth < no_lineage and truth < no_created
    with duckdb.connect() as con:
        profile_rows = con.execute(f"""
            SELECT count(*) FILTER (WHERE via = 'view'), count(*) FILTER (WHERE via = 'job') FROM '{_files(ctx, "lineage")}'
        """).fetchone()
    assert profile_rows[0] > 0 and profile_rows[1] > 0


def test_cases_and_bad_scales(small: tuple) -> None:
    spec, _ = small
    a, b = S16.draw_cases(spec, 12, 5), S16.draw_cases(spec, 12, 5)
    assert [c.input for c in a] == [c.input for c in b]
    assert len({(c.input["schema"], c.input["as_of"], c.input["idle_days"]) for c in a}) == 12
    with pytest.raises(UsageError, match="S16 needs 20,000 to 10,000,000,000 query-log records, got 19,999"):
        S16.dataset_spec(19_999, 1)


def test_perfect_empty_and_malformed_agents(small: tuple) -> None:
    spec, ctx = small
    cases = S16.draw_cases(spec, 10, 5)
    _, perfect = score_run(S16, cases, agents.perfect_s16, ctx)
    assert perfect["precision"] == perfect["recall"] == perfect["storage_recall"] == perfect["last_access_accuracy"] == 1.0
    _, empty = score_run(S16, cases, agents.empty_s16, ctx)
    assert empty["recall"] == 0.0 and empty["storage_recall"] == 0.0
    rows, bad = score_run(S16, cases, agents.malformed_s16, ctx)
    assert all(not r["passed"] and r["reason"].startswith("answer.zombies") for r in rows)
    assert bad["recall"] == 0.0 and bad["storage_recall"] == 0.0


def test_reference_agent_meets_targets_at_default_scale(tmp_path: Path) -> None:
    spec = S16.dataset_spec(S16.default_records, SEED)
    ctx = materialize_local(spec, tmp_path)
    cases = S16.draw_cases(spec, S16.default_cases, SEED)
    _, m = score_run(S16, cases, S16.reference_agent(), ctx)
    for name, th in S16.thresholds.items():
        assert th.met(m[name]), (name, m[name])
    assert m["precision"] == m["recall"] == m["storage_recall"] == m["last_access_accuracy"] == 1.0
    assert sum(c.attributes["n_quarterly"] + c.attributes["n_read_downstream"] for c in cases) > 0


@pytest.mark.slow
def test_cli_run_with_the_perfect_agent(prefect_server: str, dask_local: str, tmp_path: Path) -> None:
    res = run_cli(
        [
            "run",
            "s16",
            "--records",
            "20000",
            "--cases",
            "6",
            "--agent",
            "tests.agents_issue5:perfect_s16",
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
    assert summary["scenario"] == "s16-zombies" and summary["status"] == "completed" and summary["passed"] is True
    assert summary["counts"]["cases"] == 6 and summary["counts"]["failed"] == 0
    assert summary["metrics"]["precision"] == summary["metrics"]["recall"] == summary["metrics"]["storage_recall"] == 1.0
    assert summary["metrics"]["saved_bytes_per_case"] > 0


@pytest.mark.slow
def test_cli_run_with_malformed_answers_completes(prefect_server: str, dask_local: str, tmp_path: Path) -> None:
    res = run_cli(
        [
            "run",
            "s16",
            "--records",
            "20000",
            "--cases",
            "5",
            "--agent",
            "tests.agents_issue5:malformed_s16",
            "--data-dir",
            str(tmp_path),
            "--dask-address",
            dask_local,
            "--json",
        ],
        env_extra={"PREFECT_API_URL": prefect_server},
    )
    assert res.returncode == 1, res.stderr[-2000:]  # the run completes; it fails its thresholds, so it exits 1
    summary = json.loads(res.stdout)
    assert summary["status"] == "completed" and summary["passed"] is False
    assert summary["counts"]["cases"] == 5 and summary["counts"]["failed"] == 5
    assert summary["metrics"]["recall"] == 0.0
