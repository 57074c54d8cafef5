"""Validate a run's parameters up front, with one clear message per problem."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from scenario_pipeline.agents.loader import agent_kind
from scenario_pipeline.datasets.spec import MAX_RECORDS
from scenario_pipeline.errors import UsageError, positive
from scenario_pipeline.scenarios.base import Scenario
from scenario_pipeline.scenarios.registry import get_scenario, short_id
from scenario_pipeline.settings import Settings
from scenario_pipeline.storage import normalize_url

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_SEED = 2**63 - 1  # the warehouse stores seeds as BIGINT
DASK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
WAREHOUSE_SCHEMES = "use duckdb:///path/file.duckdb or redshift://user@host:5439/db"


@dataclass(frozen=True)
class SandboxParams:
    """How untrusted agents run (tasks/sandbox.py SandboxPolicy); defaults from SCENARIO_SANDBOX_*."""

    trust_agent: bool = False  # run without the sandbox: only for agents you wrote
    memory_mb: int = 4096
    max_processes: int = 64
    network: str = "none"  # none | outbound
    agent_env: tuple[str, ...] = ()  # names of environment variables passed to the agent (SCENARIO_AGENT_ENV)


NETWORKS = ("none", "outbound")
PRIVATE_SEED_ENV = "SCENARIO_PRIVATE_SEED"
MIN_PRIVATE_SEED = 2**32  # smaller seeds are found by trying them all against a dataset's spec hash
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_sandbox(
    settings: Settings,
    trust_agent: object = None,
    memory_mb: object = None,
    max_processes: object = None,
    network: object = None,
    agent_env: object = None,
) -> SandboxParams:
    """The agent sandbox's parameters, each checked; None takes the setting."""
    sb = settings.sandbox
    memory_mb = sb.memory_mb if memory_mb is None else memory_mb
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or not 64 <= memory_mb <= 1 << 20:
        raise UsageError(f"agent memory limit must be a whole number of MB from 64 to 1048576, got {memory_mb!r}")
    max_processes = sb.max_processes if max_processes is None else max_processes
    if isinstance(max_processes, bool) or not isinstance(max_processes, int) or not 1 <= max_processes <= 4096:
        raise UsageError(f"agent process limit must be a whole number from 1 to 4096, got {max_processes!r}")
    network = sb.network if network is None else network
    if network not in NETWORKS:
        raise UsageError(f"agent network must be one of {', '.join(NETWORKS)}, got {network!r}")
    names = settings.agent.env if agent_env is None else agent_env
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and ENV_NAME.match(n) for n in names):
        raise UsageError(f"agent environment must be a comma-separated list of variable names, got {agent_env!r}")
    trust = sb.trust_agent if trust_agent is None else trust_agent
    if not isinstance(trust, bool):
        raise UsageError(f"trust agent must be true or false, got {trust_agent!r}")
    return SandboxParams(trust, memory_mb, max_processes, network, tuple(names))


def sandbox_policy(params: RunParams) -> Any:
    """The run's tasks/sandbox.py SandboxPolicy."""
    from scenario_pipeline.tasks.sandbox import SandboxPolicy

    sb = params.sandbox
    return SandboxPolicy(
        trusted=sb.trust_agent, memory_mb=sb.memory_mb, max_processes=sb.max_processes, network=sb.network, env_allow=sb.agent_env
    )


def sandbox_strength(agent: str, policy: Any, local_dataset: bool) -> str:
    """What confines this run's agent, in one line (the summary, the report, the runs table)."""
    from scenario_pipeline.tasks.sandbox import describe_policy, sandbox_support

    kind = agent_kind(agent)
    if kind == "http":
        return (
            "none here: an HTTP agent runs on its own machine (it sees what its service can reach; the harness sends cases only)"
        )
    if policy.trusted:
        return "trusted (--trust-agent): no isolation"
    if kind == "reference" and not (local_dataset and sandbox_support()[0]):
        return "trusted: no isolation (the project's own reference agent)"
    return describe_policy(policy)


def check_sandbox_available(agent: str, sandbox: SandboxParams) -> None:
    """An agent nobody here wrote runs only in the sandbox: where this machine cannot give one, refuse
    up front unless the user vouches for the agent with --trust-agent."""
    if agent_kind(agent) != "python" or sandbox.trust_agent:
        return
    from scenario_pipeline.tasks.sandbox import sandbox_support

    ok, why = sandbox_support()
    if not ok:
        raise UsageError(
            f"the agent sandbox is unavailable on this machine ({why}), and {agent} may be code nobody here wrote; "
            "fix that, or pass --trust-agent to run it without isolation"
        )


def private_seed(seed_secret: object = None) -> int:
    """A private seed, from the Prefect Secret block ``seed_secret`` or else SCENARIO_PRIVATE_SEED;
    never from a command line or a flow parameter, where agents and logs could read it."""
    import os

    if seed_secret is not None:
        if not isinstance(seed_secret, str) or not re.match(r"^[a-z0-9][a-z0-9-]{0,127}$", seed_secret):
            raise UsageError(
                f"seed secret must name a Prefect Secret block (lower-case letters, digits, '-'), got {seed_secret!r}"
            )
        from prefect.blocks.system import Secret

        try:
            raw = str(cast(Secret, Secret.load(seed_secret)).get())  # load() is typed sync-or-async
        except Exception as exc:  # noqa: BLE001 - missing block, API down: one line
            raise UsageError(
                f"cannot read the Prefect Secret block {seed_secret!r} ({type(exc).__name__}); create it with "
                f"Secret(value='<a large random whole number>').save({seed_secret!r})"
            ) from None
        where = f"Secret block {seed_secret!r}"
    else:
        raw = os.environ.get(PRIVATE_SEED_ENV, "")
        where = PRIVATE_SEED_ENV
        if not raw.strip():
            raise UsageError(
                f"a private seed needs {PRIVATE_SEED_ENV} set (or --seed-secret BLOCK); make one with "
                "python -c 'import secrets; print(secrets.randbits(63))'"
            )
    try:
        value = int(raw.strip())
    except ValueError:
        raise UsageError(f"{where} must hold a whole number") from None  # never echo a secret
    if not MIN_PRIVATE_SEED <= value <= MAX_SEED:
        raise UsageError(
            f"{where} must hold a whole number from 2^32 to 2^63-1: a small seed is found by trying every one "
            "against the dataset's hash"
        )
    return value


def seed_commitment(seed: int) -> str:
    """HMAC of a private seed under the harness key: equal for equal seeds (so runs compare), useless
    to anyone without the key."""
    import hashlib
    import hmac

    from scenario_pipeline.harness_key import harness_key

    return hmac.new(harness_key(), b"scenario-pipeline seed\x00" + str(seed).encode(), hashlib.sha256).hexdigest()[:32]


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
    max_cost_usd: float | None = None  # the run's budget (cost/budget.py)
    price_profile: str | None = None  # unit prices of its estimate (cost/prices.py)
    seed_commitment: str | None = None  # set when the seed is private: then it is never written, only this
    fail_on_threshold: bool = True  # a run that misses a threshold ends Failed (exit code 1)
    sandbox: SandboxParams = SandboxParams()
    concurrency: int = 256  # agent calls in flight across the run (settings: fanout.concurrency)
    max_retries: int = 5  # retries of a rate-limited or unavailable call (settings: fanout.max_retries)

    @property
    def public_seed(self) -> int:
        """The seed as it may be written down: -1 when it is private (see ``seed_commitment``)."""
        return -1 if self.seed_commitment else self.seed

    def describe_seed(self) -> str:
        return f"a private seed (commitment {self.seed_commitment[:12]})" if self.seed_commitment else f"seed {self.seed}"


MAX_CASE_TIMEOUT_S = 86_400.0  # a day: longer is a stuck agent, not a slow one
MAX_ANSWER_BYTES_LIMIT = 1 << 30  # answers cross a pipe and land in memory on a worker


def check_case_timeout(value: object) -> float:
    """The per-case time limit: a number of seconds above 0 and at most a day."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value <= MAX_CASE_TIMEOUT_S):
        raise UsageError(f"case timeout must be a number of seconds above 0 and at most {MAX_CASE_TIMEOUT_S:,.0f}, got {value!r}")
    return float(value)


def check_max_answer_bytes(value: object) -> int:
    """The largest answer accepted: a whole number of bytes from 1 to 1 GiB."""
    if isinstance(value, bool) or not isinstance(value, int) or not (0 < value <= MAX_ANSWER_BYTES_LIMIT):
        raise UsageError(f"max answer bytes must be a whole number from 1 to {MAX_ANSWER_BYTES_LIMIT:,}, got {value!r}")
    return value


MAX_CONCURRENCY = 100_000  # agent calls in flight across a run: sockets and sandbox calls, not threads
MAX_RETRIES = 100


def check_concurrency(value: object) -> int:
    """Agent calls in flight across the whole run: a whole number from 1 to 100,000."""
    if isinstance(value, bool) or not isinstance(value, int) or not (0 < value <= MAX_CONCURRENCY):
        raise UsageError(
            f"concurrency must be a whole number of agent calls in flight from 1 to {MAX_CONCURRENCY:,}, got {value!r}"
        )
    return value


def check_max_retries(value: object) -> int:
    """Retries of a rate-limited or unavailable agent call: a whole number from 0 to 100."""
    if isinstance(value, bool) or not isinstance(value, int) or not (0 <= value <= MAX_RETRIES):
        raise UsageError(f"max retries must be a whole number from 0 to {MAX_RETRIES}, got {value!r}")
    return value


def check_run_id(run_id: object, what: str = "run id") -> str:
    """A run id names folders (runs/{id}/) and rows: letters, digits, '.', '_' and '-' only."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise UsageError(
            f"{what} {run_id!r} may hold only letters, digits, '.', '_' and '-' (1-128, starting with a letter or digit)"
        )
    return run_id


def check_seed(seed: object) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise UsageError(f"seed must be a whole number from 0 to 2^63-1, got {seed!r}")
    return seed


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


def check_dataset_scale(sc: Scenario, records: int, seed: int) -> None:
    """The scenario's dataset at this scale can be built (each scenario has its own range)."""
    try:
        sc.dataset_spec(records, seed)
    except UsageError as exc:
        raise UsageError(_one_line(str(exc))) from None
    except ValueError as exc:  # pydantic's ValidationError is one
        raise UsageError(f"{sc.id} at {records:,} records: {_one_line(str(exc))}") from None


_PYDANTIC_HEAD = re.compile(r"\d+ validation errors? for \w+\s*$")


def _one_line(text: str) -> str:
    """One line of a message; pydantic's several lines and link become what they say."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip() and "errors.pydantic.dev" not in ln]
    if lines and _PYDANTIC_HEAD.search(lines[0]):
        head = _PYDANTIC_HEAD.sub("", lines[0]).strip()
        said = [re.sub(r"\s*\[type=.*$", "", ln).removeprefix("Value error, ") for ln in lines[1:]]
        return " ".join(f"{head} {'; '.join(said)}".split())
    return " ".join(" ".join(lines).split())


def check_compare_params(
    run_ids: object,
    warehouse_url: object = None,
    storage_url: object = None,
    correction: object = "holm",
    alpha: object = 0.05,
    n_boot: object = 10_000,
) -> None:
    """The compare-runs flow's parameters (and `scenario compare`'s)."""
    from scenario_pipeline.compare.engine import CORRECTIONS

    if isinstance(run_ids, str) or not isinstance(run_ids, (list, tuple)) or len(run_ids) < 2:
        raise UsageError(f"give at least two run ids to compare (a list), got {run_ids!r}")
    for r in run_ids:
        check_run_id(r)
    dupes = sorted({r for r in run_ids if list(run_ids).count(r) > 1})
    if dupes:
        raise UsageError(f"run(s) {dupes} given more than once; compare different runs")
    if correction not in CORRECTIONS:
        raise UsageError(f"correction {correction!r} is not known; use one of {sorted(CORRECTIONS)}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise UsageError(f"alpha must lie between 0 and 1 (e.g. 0.05), got {alpha!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or not 100 <= n_boot <= 1_000_000:
        raise UsageError(f"n_boot (bootstrap resamples) must be a whole number from 100 to 1,000,000, got {n_boot!r}")
    check_warehouse_url(warehouse_url)
    check_storage_url(storage_url)


def check_generate_params(
    dataset: object,
    records: object,
    partition_rows: object = None,
    seed: object = None,
    storage_url: object = None,
    dask_address: object = None,
    settings: Settings | None = None,
):  # noqa: ANN201 - DatasetSpec
    """The generate-dataset flow's parameters (and `scenario generate`'s); returns the dataset's spec."""
    from scenario_pipeline.datasets.catalog import build_spec
    from scenario_pipeline.settings import load_settings

    if not isinstance(dataset, str):
        raise UsageError(f"dataset must be a dataset name such as 'events', got {dataset!r}")
    for name, value in (("records", records), ("partition rows", partition_rows)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise UsageError(f"{name} must be a positive whole number, got {value!r}")
    if records is None:
        raise UsageError("records must be a positive whole number, got None")
    check_seed(seed)
    check_storage_url(storage_url)
    check_dask_address(dask_address)
    settings = settings or load_settings()
    try:
        return build_spec(
            dataset,
            records=cast(int, records),
            seed=cast(int, settings.seed if seed is None else seed),
            partition_rows=cast("int | None", partition_rows),
        )
    except UsageError as exc:
        raise UsageError(_one_line(str(exc))) from None


MAX_GATE_TIMEOUT_S = 30 * 86400


def check_promote_params(
    run_id: object,
    warehouse_url: object = None,
    interactive: object = False,
    decided_by: object = None,
    timeout_s: object = 3600,
    poll_interval_s: object = 5,
) -> None:
    """The promote-baseline flow's parameters (and `scenario baseline promote`'s)."""
    check_run_id(run_id)
    check_warehouse_url(warehouse_url)
    if not isinstance(interactive, bool):
        raise UsageError(f"interactive must be true or false, got {interactive!r}")
    if decided_by is not None and (
        not isinstance(decided_by, str) or not 0 < len(decided_by) <= 256 or not decided_by.isprintable()
    ):
        raise UsageError(f"decided_by must be a name of 1 to 256 printable characters, got {decided_by!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or not 0 < timeout_s <= MAX_GATE_TIMEOUT_S:
        raise UsageError(
            f"timeout must be a whole number of seconds from 1 to {MAX_GATE_TIMEOUT_S:,} (30 days), got {timeout_s!r}"
        )
    if isinstance(poll_interval_s, bool) or not isinstance(poll_interval_s, int) or not 0 < poll_interval_s <= timeout_s:
        raise UsageError(
            f"poll interval must be a whole number of seconds from 1 to the timeout ({timeout_s}), got {poll_interval_s!r}"
        )


def check_reconcile_params(days: object = None, warehouse_url: object = None, today: object = None):  # noqa: ANN201 - date | None
    """The reconcile-costs flow's parameters (and `scenario reconcile-costs`'); returns ``today`` as a date."""
    from datetime import date

    from scenario_pipeline.cost.reconcile import window

    if days is not None:
        window(date.today(), cast(int, days), None)  # 1 to MAX_LOOKBACK_DAYS, its message
    if warehouse_url is not None and not str(warehouse_url).startswith("variable:"):
        check_warehouse_url(warehouse_url)
    if today is None:
        return None
    try:
        if not isinstance(today, str):
            raise ValueError(today)
        return date.fromisoformat(today)
    except ValueError:
        raise UsageError(f"today must be a date as YYYY-MM-DD, got {today!r}") from None


def new_run_id(scenario_id: str) -> str:
    return f"{short_id(scenario_id)}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def from_variable(value: str | None, what: str) -> str | None:
    """``variable:NAME`` stands for the value of Prefect Variable NAME (deployment parameters
    name where data lives without carrying it, and never carry secrets)."""
    if not isinstance(value, str) or not value.startswith("variable:"):  # other types are refused later, clearly
        return value
    name = value.removeprefix("variable:")
    from prefect.variables import Variable

    resolved = Variable.get(name, default=None)
    if not resolved:
        raise UsageError(
            f"{what} names Prefect variable {name!r}, which does not exist; create it with `prefect variable set {name} URL`"
        )
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
    case_timeout_s: float | None = None,
    max_answer_bytes: int | None = None,
    private: bool = False,
    seed_secret: str | None = None,
    fail_on_threshold: bool = True,
    sandbox: SandboxParams | None = None,
    concurrency: int | None = None,
    max_retries: int | None = None,
) -> RunParams:
    if not isinstance(scenario, str):
        raise UsageError(f"scenario must be a scenario id such as 's12', got {scenario!r}")
    sc = get_scenario(scenario)
    storage_url = from_variable(storage_url, "storage URL")
    warehouse_url = from_variable(warehouse_url, "warehouse URL")
    dask_address = from_variable(dask_address, "Dask address")
    records = positive("records", records if records is not None else sc.default_records, integer=True)
    cases = positive("cases", cases if cases is not None else sc.default_cases, integer=True)
    if records > MAX_RECORDS:  # the largest dataset there is
        raise UsageError(f"records must be at most 10^12, got {records:,}")
    if cases > sc.max_cases:
        raise UsageError(f"{sc.id} draws at most {sc.max_cases} cases, got {cases}")
    if shard_size is not None:
        positive("shard size", shard_size, integer=True)
    check_seed(seed)  # also at most 2^63-1
    if not isinstance(private, bool) or not isinstance(fail_on_threshold, bool):
        raise UsageError("private seed and fail on threshold must be true or false")
    commitment = None
    if private or seed_secret is not None:
        if seed is not None:
            raise UsageError("give either --seed (public) or a private seed (--private-seed / --seed-secret), not both")
        seed = private_seed(seed_secret)
        commitment = seed_commitment(seed)
    if not isinstance(agent, str):
        raise UsageError(f"agent must be 'reference', 'package.module:callable' or an http(s):// URL, got {agent!r}")
    agent_kind(agent)
    sandbox = sandbox or check_sandbox(settings)
    check_sandbox_available(agent, sandbox)
    if run_id is not None:
        check_run_id(run_id)
    check_dask_address(dask_address)  # scheme, host and port
    check_storage_url(storage_url)  # before any work, not when the flow first writes
    wh = warehouse_url or settings.resolved_warehouse_url()
    check_warehouse_url(wh)  # the whole URL, not only its scheme
    check_dataset_scale(sc, records, settings.seed if seed is None else seed)  # each scenario's own range of records
    from scenario_pipeline.cost.budget import check_max_cost
    from scenario_pipeline.cost.prices import normalize_ref

    concurrency = check_concurrency(settings.fanout.concurrency if concurrency is None else concurrency)
    max_retries = check_max_retries(settings.fanout.max_retries if max_retries is None else max_retries)
    max_cost_usd = check_max_cost(max_cost_usd)
    price_profile = normalize_ref(price_profile) if price_profile is not None else None
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
        case_timeout_s=check_case_timeout(settings.fanout.case_timeout_s if case_timeout_s is None else case_timeout_s),
        max_answer_bytes=check_max_answer_bytes(
            settings.fanout.max_answer_bytes if max_answer_bytes is None else max_answer_bytes
        ),
        max_cost_usd=max_cost_usd,
        price_profile=price_profile,
        seed_commitment=commitment,
        fail_on_threshold=fail_on_threshold,
        sandbox=sandbox,
        concurrency=concurrency,
        max_retries=max_retries,
    )
