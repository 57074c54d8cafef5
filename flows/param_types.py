"""The flows' parameter types: every bound and every check of a parameter, in one place.

Each type is an ``Annotated`` pydantic type. The flows carry them on their signatures, so Prefect
validates a flow call's and a deployment run's parameters with them (and shows the bounds in the
deployment's parameter schema); ``valid`` checks a value with the same type for the CLI and for
``resolve_params``, strictly (no "4" for 4). A refused value gives the project's one-line message,
a ``UsageError`` from ``valid`` and the validation error's ``msg`` in Prefect.

Checks that need more than a type (URLs, run ids, names) are the ``check_*`` functions here, run
by the types through ``_checked``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import PydanticCustomError

from scenario_pipeline.agents.loader import agent_kind
from scenario_pipeline.cost.budget import check_max_cost
from scenario_pipeline.datasets.spec import MAX_RECORDS
from scenario_pipeline.errors import ScenarioError, UsageError
from scenario_pipeline.scenarios.registry import get_scenario
from scenario_pipeline.storage import normalize_url

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_SEED = 2**63 - 1  # the warehouse stores seeds as BIGINT
DASK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
WAREHOUSE_SCHEMES = "use duckdb:///path/file.duckdb or redshift://user@host:5439/db"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_CASE_TIMEOUT_S = 86_400.0  # a day: longer is a stuck agent, not a slow one
MAX_ANSWER_BYTES_LIMIT = 1 << 30  # answers cross a pipe and land in memory on a worker
MAX_CONCURRENCY = 100_000  # agent calls in flight across a run: sockets and sandbox calls, not threads
MAX_RETRIES = 100
MAX_GATE_TIMEOUT_S = 30 * 86400
MAX_LOOKBACK_DAYS = 365  # Cost Explorer keeps 13 months of daily data (cost/reconcile.py checks its own input too)
USAGE = "usage"  # the error type of a project message inside a pydantic ValidationError


def _error(message: str) -> PydanticCustomError:
    return PydanticCustomError(USAGE, "{message}", {"message": message})


def _worded(message: str | Callable[[Any], str], numeric: bool = True) -> WrapValidator:
    """Whatever the type refuses (and, for a number, a bool) gets ``message`` (``{value!r}``: what was given)."""

    def say(value: Any) -> PydanticCustomError:
        return _error(message(value) if callable(message) else message.format(value=value))

    def wrap(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if numeric and isinstance(value, bool):
            raise say(value)
        try:
            return handler(value)
        except ValidationError as exc:
            if all(e["type"] == USAGE for e in exc.errors()):  # an inner type already said it
                raise _error(exc.errors()[0]["msg"]) from None
            raise say(value) from None

    return WrapValidator(wrap)


def _checked(check: Callable[[Any], Any], variables: bool = False) -> WrapValidator:
    """``check`` (one of the functions below) on the value as given, its result then validated as the type;
    its UsageError becomes the validation error's message. ``variables``: ``variable:NAME`` (a Prefect
    Variable, resolved in the flow by params.from_variable) passes as it is."""

    def wrap(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not (variables and isinstance(value, str) and value.startswith("variable:")):
            try:
                value = check(value)
            except ScenarioError as exc:
                raise _error(str(exc)) from None
        return handler(value)

    return WrapValidator(wrap)


# ---- the checks that need more than a type ----


def check_run_id(run_id: object, what: str = "run id") -> str:
    """A run id names folders (runs/{id}/) and rows: letters, digits, '.', '_' and '-' only."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise UsageError(
            f"{what} {run_id!r} may hold only letters, digits, '.', '_' and '-' (1-128, starting with a letter or digit)"
        )
    return run_id


def check_run_ids(run_ids: object) -> list[str]:
    """Runs to compare: at least two, each a run id, none twice."""
    if isinstance(run_ids, str) or not isinstance(run_ids, (list, tuple)) or len(run_ids) < 2:
        raise UsageError(f"give at least two run ids to compare (a list), got {run_ids!r}")
    for r in run_ids:
        check_run_id(r)
    dupes = sorted({r for r in run_ids if list(run_ids).count(r) > 1})
    if dupes:
        raise UsageError(f"run(s) {dupes} given more than once; compare different runs")
    return list(run_ids)


def check_storage_url(url: object) -> str | None:
    """None (the settings' storage) or a file:// / s3:// URL, spelled out."""
    if url is None:
        return None
    if not isinstance(url, str) or not url.strip():
        raise UsageError(f"storage URL must be file:///path or s3://bucket/prefix, got {url!r}")
    return normalize_url(url)


def check_warehouse_url(url: object) -> str | None:
    """None (the settings' warehouse) or a duckdb:// / redshift:// URL whose every part is usable.

    A Redshift URL with a password in it is refused here, before it can become a flow run's parameter.
    """
    if url is None:
        return None
    if not isinstance(url, str) or not url.strip():
        raise UsageError(f"warehouse URL must be a string; {WAREHOUSE_SCHEMES}")
    from urllib.parse import urlparse

    from scenario_pipeline.warehouse.base import redact_url

    scheme = urlparse(url).scheme
    if scheme == "duckdb":
        from scenario_pipeline.warehouse.duckdb_backend import duckdb_path

        if not str(duckdb_path(url)).strip() or str(duckdb_path(url)) in (".", "/"):
            raise UsageError(f"warehouse URL {url!r} names no file; use duckdb:///path/file.duckdb")
        return url
    if scheme == "redshift":
        from scenario_pipeline.warehouse.redshift_backend import parse_url

        parse_url(url)
        return url
    # secrets - a URL of another kind may carry a password: show it without
    raise UsageError(f"warehouse URL {redact_url(url)!r} has an unknown scheme {scheme!r}; {WAREHOUSE_SCHEMES}")


def check_dask_address(address: object) -> str | None:
    """None (a LocalCluster) or scheme://host:port of a scheduler; not contacted here."""
    if address is None:
        return None
    from urllib.parse import urlparse

    if not isinstance(address, str) or "://" not in address:
        raise UsageError(f"Dask address {address!r} needs a scheme, e.g. tcp://host:8786")
    url = urlparse(address)
    if url.scheme not in DASK_SCHEMES:
        raise UsageError(
            f"Dask address {address!r} has unknown scheme {url.scheme!r}; use tcp://host:8786 (or {', '.join(DASK_SCHEMES[1:])})"
        )
    try:
        port = url.port
    except ValueError:
        port = None
    if not url.hostname or not port:
        raise UsageError(f"Dask address {address!r} needs a host and a port, e.g. tcp://host:8786")
    return address


def check_scenario(scenario: object) -> str:
    if not isinstance(scenario, str):
        raise UsageError(f"scenario must be a scenario id such as 's12', got {scenario!r}")
    get_scenario(scenario)  # unknown ids: its message
    return scenario


def check_scenarios(scenarios: object) -> list[str]:
    if isinstance(scenarios, str) or not isinstance(scenarios, (list, tuple)) or not all(isinstance(s, str) for s in scenarios):
        raise UsageError(f"scenarios must be a list of scenario ids such as ['s12', 's14'], got {scenarios!r}")
    return [check_scenario(s) for s in scenarios]


def check_agent(agent: object) -> str:
    """The agent's spelling (its kind); whether it imports or answers is checked when the run opens."""
    if not isinstance(agent, str):
        raise UsageError(f"agent must be 'reference', 'package.module:callable' or an http(s):// URL, got {agent!r}")
    agent_kind(agent)
    return agent


def check_dataset(dataset: object) -> str:
    if not isinstance(dataset, str):
        raise UsageError(f"dataset must be a dataset name such as 'events', got {dataset!r}")
    return dataset


def check_agent_env(names: object) -> list[str]:
    """Names of environment variables passed to the agent: a list, or one comma-separated string."""
    given = names
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and ENV_NAME.match(n) for n in names):
        raise UsageError(f"agent environment must be a comma-separated list of variable names, got {given!r}")
    return list(names)


def check_decided_by(name: object) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= 256 or not name.isprintable():
        raise UsageError(f"decided_by must be a name of 1 to 256 printable characters, got {name!r}")
    return name


def check_today(today: object) -> str:
    from datetime import date

    try:
        if not isinstance(today, str):
            raise ValueError(today)
        date.fromisoformat(today)
    except ValueError:
        raise UsageError(f"today must be a date as YYYY-MM-DD, got {today!r}") from None
    return today


def check_price_profile(ref: object) -> str:
    """A built-in price profile's name, or a .toml file (as an absolute path), checked to load."""
    from scenario_pipeline.cost.prices import normalize_ref  # lazy: with the settings

    if not isinstance(ref, str):
        raise UsageError(f"price profile must be a built-in name or a .toml file, got {ref!r}")
    return normalize_ref(ref)


def _records_message(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_RECORDS:
        return f"records must be at most 10^12, got {value:,}"
    return f"records must be a positive whole number, got {value!r}"


# ---- the types ----

ScenarioName = Annotated[str, _checked(check_scenario)]
ScenarioNames = Annotated[list[str], _checked(check_scenarios)]
DatasetName = Annotated[str, _checked(check_dataset)]
AgentSpec = Annotated[str, _checked(check_agent)]
RunId = Annotated[str, Field(pattern=RUN_ID.pattern), _checked(check_run_id)]
RunIds = Annotated[list[str], Field(min_length=2), _checked(check_run_ids)]
StorageUrl = Annotated[str, _checked(check_storage_url, variables=True)]
WarehouseUrl = Annotated[str, _checked(check_warehouse_url, variables=True)]
DaskAddress = Annotated[str, _checked(check_dask_address, variables=True)]
Records = Annotated[int, Field(ge=1, le=MAX_RECORDS), _worded(_records_message)]
Cases = Annotated[int, Field(ge=1), _worded("cases must be a positive whole number, got {value!r}")]
ShardSize = Annotated[int, Field(ge=1), _worded("shard size must be a positive whole number, got {value!r}")]
PartitionRows = Annotated[int, Field(ge=1), _worded("partition rows must be a positive whole number, got {value!r}")]
MaxCostUsd = Annotated[float, Field(gt=0), _checked(check_max_cost)]  # US dollars
PriceProfile = Annotated[str, _checked(check_price_profile)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED), _worded("seed must be a whole number from 0 to 2^63-1, got {value!r}")]
CaseTimeout = Annotated[
    float,
    Field(gt=0, le=MAX_CASE_TIMEOUT_S),
    _worded(f"case timeout must be a number of seconds above 0 and at most {MAX_CASE_TIMEOUT_S:,.0f}, got {{value!r}}"),
]
MaxAnswerBytes = Annotated[
    int,
    Field(ge=1, le=MAX_ANSWER_BYTES_LIMIT),
    _worded(f"max answer bytes must be a whole number from 1 to {MAX_ANSWER_BYTES_LIMIT:,}, got {{value!r}}"),
]
Concurrency = Annotated[
    int,
    Field(ge=1, le=MAX_CONCURRENCY),
    _worded(f"concurrency must be a whole number of agent calls in flight from 1 to {MAX_CONCURRENCY:,}, got {{value!r}}"),
]
MaxRetries = Annotated[
    int, Field(ge=0, le=MAX_RETRIES), _worded(f"max retries must be a whole number from 0 to {MAX_RETRIES}, got {{value!r}}")
]
MemoryMB = Annotated[
    int,
    Field(ge=64, le=1 << 20),
    _worded("agent memory limit must be a whole number of MB from 64 to 1048576, got {value!r}"),
]
MaxProcesses = Annotated[
    int, Field(ge=1, le=4096), _worded("agent process limit must be a whole number from 1 to 4096, got {value!r}")
]
AgentNetwork = Annotated[
    Literal["none", "outbound"], _worded("agent network must be one of none, outbound, got {value!r}", numeric=False)
]
AgentEnv = Annotated[list[str], _checked(check_agent_env)]
TrustAgent = Annotated[bool, _worded("trust agent must be true or false, got {value!r}", numeric=False)]
Switch = Annotated[bool, _worded("private seed and fail on threshold must be true or false", numeric=False)]
Correction = Annotated[
    Literal["holm", "bh"],  # compare/stats.py CORRECTIONS (tests/test_flow_params.py keeps them equal)
    _worded("correction {value!r} is not known; use one of ['bh', 'holm']", numeric=False),
]
Alpha = Annotated[float, Field(gt=0, lt=1), _worded("alpha must lie between 0 and 1 (e.g. 0.05), got {value!r}")]
NBoot = Annotated[
    int,
    Field(ge=100, le=1_000_000),
    _worded("n_boot (bootstrap resamples) must be a whole number from 100 to 1,000,000, got {value!r}"),
]
Interactive = Annotated[bool, _worded("interactive must be true or false, got {value!r}", numeric=False)]
DecidedBy = Annotated[str, Field(min_length=1, max_length=256), _checked(check_decided_by)]
GateTimeout = Annotated[
    int,
    Field(ge=1, le=MAX_GATE_TIMEOUT_S),
    _worded(f"timeout must be a whole number of seconds from 1 to {MAX_GATE_TIMEOUT_S:,} (30 days), got {{value!r}}"),
]
PollInterval = Annotated[
    int,
    Field(ge=1, le=MAX_GATE_TIMEOUT_S),
    _worded("poll interval must be a whole number of seconds from 1 to the timeout, got {value!r}"),
]
Days = Annotated[
    int,
    Field(ge=1, le=MAX_LOOKBACK_DAYS),
    _worded(f"days must be a whole number from 1 to {MAX_LOOKBACK_DAYS}, got {{value!r}}"),
]
Today = Annotated[str, _checked(check_today)]  # YYYY-MM-DD

_ADAPTERS: dict[int, TypeAdapter[Any]] = {}


def valid(kind: Any, value: Any) -> Any:
    """``value`` as the type ``kind`` takes it, checked strictly (as the flows' own code passes values:
    no "4" for 4); else a one-line UsageError. Prefect checks flow parameters with the same types, laxly."""
    adapter = _ADAPTERS.get(id(kind))
    if adapter is None:
        adapter = _ADAPTERS[id(kind)] = TypeAdapter(kind)
    try:
        return adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        raise usage_error(exc) from None


def valid_or_none(kind: Any, value: Any) -> Any:
    return None if value is None else valid(kind, value)


def usage_error(exc: BaseException) -> UsageError:
    """A pydantic ValidationError, or Prefect's ParameterTypeError (which keeps only its " - param: msg" lines),
    as one line: each message named by its parameter unless it names it already."""
    said: list[tuple[str, str]] = []
    if isinstance(exc, ValidationError):
        for e in exc.errors():
            msg = e["msg"] if e["type"] == USAGE else f"{e['msg']}, got {e.get('input')!r}"
            said.append((".".join(str(p) for p in e["loc"]), msg))
    else:
        for line in str(exc).splitlines():
            if line.startswith(" - "):
                where, _, msg = line.removeprefix(" - ").partition(": ")
                said.append((where, msg) if msg else ("", where))
    parts = [msg if where.replace("_", " ").lower() in msg.lower() else f"{where}: {msg}" for where, msg in said]
    return UsageError(" ".join("; ".join(parts or [str(exc)]).split()))
