"""Typed flow parameters (issue 14): the flows carry flows/param_types.py's types on their signatures and
Prefect validates with them; the bounds show in the parameter schema; the CLI and resolve_params check
with the same types (tests/test_bad_input_all.py pins their messages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest

FLOW_MODULES = ["run_scenario", "run_suite", "compare_runs", "reconcile_costs", "promote_baseline", "generate_dataset"]


def _flows() -> list[Any]:
    import importlib

    return [getattr(importlib.import_module(f"scenario_pipeline.flows.{m}"), m) for m in FLOW_MODULES]


def test_every_flow_validates_its_parameters() -> None:
    for f in _flows():
        assert f.should_validate_parameters, f.name


def test_run_scenario_schema_carries_the_bounds() -> None:
    from prefect.utilities.callables import parameter_schema

    from scenario_pipeline.flows.run_scenario import run_scenario

    props = parameter_schema(run_scenario.fn).model_dump()["properties"]

    def bounds(name: str) -> dict[str, Any]:
        (typed,) = [s for s in props[name]["anyOf"] if s.get("type") != "null"]
        return typed

    assert {k: bounds("concurrency")[k] for k in ("type", "minimum", "maximum")} == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100_000,
    }
    assert {k: bounds("max_retries")[k] for k in ("type", "minimum", "maximum")} == {
        "type": "integer",
        "minimum": 0,
        "maximum": 100,
    }
    assert bounds("case_timeout_s")["exclusiveMinimum"] == 0 and bounds("case_timeout_s")["maximum"] == 86_400
    assert bounds("agent_network")["enum"] == ["none", "outbound"]
    assert bounds("records")["maximum"] == 10**12 and bounds("seed")["maximum"] == 2**63 - 1
    assert "pattern" in bounds("run_id")


def test_other_flows_schemas_carry_their_bounds() -> None:
    from prefect.utilities.callables import parameter_schema

    from scenario_pipeline.flows.compare_runs import compare_runs
    from scenario_pipeline.flows.promote_baseline import promote_baseline
    from scenario_pipeline.flows.reconcile_costs import reconcile_costs

    cmp = parameter_schema(compare_runs.fn).model_dump()["properties"]
    assert cmp["run_ids"]["minItems"] == 2 and cmp["n_boot"]["minimum"] == 100 and cmp["correction"]["enum"] == ["holm", "bh"]
    assert parameter_schema(promote_baseline.fn).model_dump()["properties"]["timeout_s"]["maximum"] == 30 * 86400
    days = parameter_schema(reconcile_costs.fn).model_dump()["properties"]["days"]["anyOf"][0]
    assert days["minimum"] == 1 and days["maximum"] == 365


def test_correction_type_lists_the_engines_corrections() -> None:
    from scenario_pipeline.compare.stats import CORRECTIONS
    from scenario_pipeline.flows.param_types import Correction

    assert set(get_args(get_args(Correction)[0])) == set(CORRECTIONS)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"concurrency": 0}, "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got 0"),
        ({"max_retries": 101}, "max retries must be a whole number from 0 to 100, got 101"),
        ({"concurrency": True}, "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got True"),
        ({"run_id": "../etc"}, "run id '../etc' may hold only letters"),
        ({"agent_network": "lan"}, "agent network must be one of none, outbound, got 'lan'"),
        ({"warehouse_url": "redshift://u:hunter2@h:5439/db"}, "the Redshift URL carries a password"),
        ({"private_seed": "maybe"}, "private_seed: Input should be a valid boolean"),
    ],
)
def test_prefect_refuses_a_bad_parameter_with_the_projects_message(params: dict[str, Any], message: str) -> None:
    """What the flow engine calls before the body (flow calls and deployment runs alike), and the CLI's one line of it."""
    from prefect.exceptions import ParameterTypeError

    from scenario_pipeline.flows.param_types import usage_error
    from scenario_pipeline.flows.run_scenario import run_scenario

    with pytest.raises(ParameterTypeError) as exc:
        run_scenario.validate_parameters(params)
    line = str(usage_error(exc.value))
    assert message in line and "\n" not in line and "hunter2" not in line, line


def test_prefect_coerces_what_a_deployment_sends() -> None:
    from scenario_pipeline.flows.generate_dataset import generate_dataset
    from scenario_pipeline.flows.run_scenario import run_scenario

    p = run_scenario.validate_parameters(
        {"concurrency": "4", "max_retries": 3.0, "case_timeout_s": 5, "agent_env": "A, B", "warehouse_url": "variable:wh"}
    )
    assert (p["concurrency"], p["max_retries"], p["case_timeout_s"], p["agent_env"]) == (4, 3, 5.0, ["A", "B"])
    assert p["warehouse_url"] == "variable:wh"  # resolved in the flow (params.from_variable), then checked
    assert generate_dataset.validate_parameters({"records": "1000"})["records"] == 1000


def test_the_same_types_are_strict_for_the_flows_own_callers() -> None:
    from scenario_pipeline.errors import UsageError
    from scenario_pipeline.flows.param_types import Concurrency, valid

    assert valid(Concurrency, 4) == 4
    with pytest.raises(UsageError, match="got '4'"):
        valid(Concurrency, "4")


@pytest.mark.slow
def test_a_flow_call_with_a_bad_parameter_is_refused_before_any_work(
    prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.exceptions import ParameterTypeError

    from scenario_pipeline.flows import run_scenario as module

    entered: list[str] = []
    monkeypatch.setattr(module, "load_settings", lambda: entered.append("body") or pytest.fail("the body ran"))
    monkeypatch.setenv("SCENARIO_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(ParameterTypeError, match="concurrency must be a whole number of agent calls in flight from 1 to 100,000"):
        module.run_scenario(concurrency=0)
    assert entered == [] and not (tmp_path / "data").exists()
