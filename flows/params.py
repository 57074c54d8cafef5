"""Validate a run's parameters up front, with one clear message per problem."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from scenario_pipeline.agents.loader import agent_kind
from scenario_pipeline.errors import UsageError
from scenario_pipeline.scenarios.base import Scenario
from scenario_pipeline.scenarios.registry import get_scenario, short_id
from scenario_pipeline.settings import Settings
from scenario_pipeline.storage import normalize_url

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class RunParams:
    scenario: Scenario
    records: int
    cases: int
    agent: str
    seed: int
    run_id: str
    storage_url: str
    warehouse_url: str
    dask_address: str | None
    shard_size: int | None
    case_timeout_s: float
    max_answer_bytes: int
    max_cost_usd: float | None = None  # issue 7: the run's budget (cost/budget.py)
    price_profile: str | None = None  # issue 7: unit prices of its estimate (cost/prices.py)


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"{name} must be a positive whole number, got {value!r}")
    return value


def new_run_id(scenario_id: str) -> str:
    return f"{short_id(scenario_id)}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def from_variable(value: str | None, what: str) -> str | None:
    """``variable:NAME`` stands for the value of Prefect Variable NAME (deployment parameters
    name where data lives without carrying it, and never carry secrets)."""
    if not value or not value.startswith("variable:"):
        return value
    name = value.removeprefix("variable:")
    from prefect.variables import Variable

    resolved = Variable.get(name, default=None)
    if not resolved:
        raise UsageError(f"{what} names Prefect variable {name!r}, which does not exist; create it with `prefect variable set {name} URL`")
    return str(resolved)


def resolve_params(
    settings: Settings,
    scenario: str,
    records: int | None,
    cases: int | None,
    agent: str,
    seed: int | None,
    run_id: str | None,
    storage_url: str | None,
    warehouse_url: str | None,
    dask_address: str | None,
    shard_size: int | None,
    max_cost_usd: float | None = None,
    price_profile: str | None = None,
) -> RunParams:
    sc = get_scenario(scenario)
    storage_url = from_variable(storage_url, "storage URL")
    warehouse_url = from_variable(warehouse_url, "warehouse URL")
    dask_address = from_variable(dask_address, "Dask address")
    records = _positive("records", records if records is not None else sc.default_records)
    cases = _positive("cases", cases if cases is not None else sc.default_cases)
    if cases > sc.max_cases:
        raise UsageError(f"{sc.id} draws at most {sc.max_cases} cases, got {cases}")
    if shard_size is not None:
        _positive("shard size", shard_size)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise UsageError(f"seed must be a whole number >= 0, got {seed!r}")
    agent_kind(agent)
    if run_id is not None and not RUN_ID.match(run_id):
        raise UsageError(f"run id {run_id!r} may hold only letters, digits, '.', '_' and '-' (1-128, starting with a letter or digit)")
    if dask_address is not None and "://" not in dask_address:
        raise UsageError(f"Dask address {dask_address!r} needs a scheme, e.g. tcp://host:8786")
    wh = warehouse_url or settings.resolved_warehouse_url()
    if not wh.startswith(("duckdb://", "redshift://")):
        raise UsageError(f"warehouse URL {wh.split('@')[-1]!r} has an unknown scheme; use duckdb:///path/file.duckdb or redshift://user@host:5439/db")
    # --- issue 7 (cost/): a budget in dollars, and a price profile that loads ---
    from scenario_pipeline.cost.budget import check_max_cost
    from scenario_pipeline.cost.prices import normalize_ref

    max_cost_usd = check_max_cost(max_cost_usd)
    price_profile = normalize_ref(price_profile) if price_profile is not None else None
    # --- end issue 7 ---
    return RunParams(
        scenario=sc,
        records=records,
        cases=cases,
        agent=agent,
        seed=settings.seed if seed is None else seed,
        run_id=run_id or new_run_id(sc.id),
        storage_url=normalize_url(storage_url or settings.resolved_storage_url()),
        warehouse_url=wh,
        dask_address=dask_address or settings.dask.address,
        shard_size=shard_size or settings.fanout.shard_size,
        case_timeout_s=settings.fanout.case_timeout_s,
        max_answer_bytes=settings.fanout.max_answer_bytes,
        max_cost_usd=max_cost_usd,
        price_profile=price_profile,
    )
