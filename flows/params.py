"""Validate a run's parameters up front, with one clear message per problem."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from scenario_pipeline.agents.loader import agent_kind
from scenario_pipeline.errors import UsageError
from scenario_pipeline.flows import param_types as t
from scenario_pipeline.flows.param_types import MAX_SEED
from scenario_pipeline.scenarios.base import Scenario
from scenario_pipeline.scenarios.registry import get_scenario, short_id
from scenario_pipeline.settings import Settings
from scenario_pipeline.storage import normalize_url


@dataclass(frozen=True)
class SandboxParams:
    """How untrusted agents run (tasks/sandbox.py SandboxPolicy); defaults from SCENARIO_SANDBOX_*."""

    trust_agent: bool = False  # run without the sandbox: only for agents you wrote
    memory_mb: int = 4096
    max_processes: int = 64
    network: str = "none"  # none | outbound
    agent_env: tuple[str, ...] = ()  # names of environment variables passed to the agent (SCENARIO_AGENT_ENV)


PRIVATE_SEED_ENV = "SCENARIO_PRIVATE_SEED"
MIN_PRIVATE_SEED = 2**32  # smaller seeds are found by trying them all against a dataset's spec hash


def check_sandbox(
    settings: Settings,
    trust_agent: object = None,
    memory_mb: object = None,
    max_processes: object = None,
    network: object = None,
    agent_env: object = None,
) -> SandboxParams:
    """The agent sandbox's parameters, each checked (flows/param_types.py); None takes the setting."""
    sb = settings.sandbox
    return SandboxParams(
        t.valid(t.TrustAgent, sb.trust_agent if trust_agent is None else trust_agent),
        t.valid(t.MemoryMB, sb.memory_mb if memory_mb is None else memory_mb),
        t.valid(t.MaxProcesses, sb.max_processes if max_processes is None else max_processes),
        t.valid(t.AgentNetwork, sb.network if network is None else network),
        tuple(t.valid(t.AgentEnv, settings.agent.env if agent_env is None else agent_env)),
    )


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
    """The compare-runs flow's parameters (and `scenario compare`'s), with the flow's types."""
    t.valid(t.RunIds, run_ids)
    t.valid(t.Correction, correction)
    t.valid(t.Alpha, alpha)
    t.valid(t.NBoot, n_boot)
    t.valid_or_none(t.WarehouseUrl, warehouse_url)
    t.valid_or_none(t.StorageUrl, storage_url)


def check_generate_params(
    dataset: object,
    records: object,
    partition_rows: object = None,
    seed: object = None,
    storage_url: object = None,
    dask_address: object = None,
    settings: Settings | None = None,
):  # noqa: ANN201 - DatasetSpec
    """The generate-dataset flow's parameters (and `scenario generate`'s), with the flow's types; returns the dataset's spec."""
    from scenario_pipeline.datasets.catalog import build_spec
    from scenario_pipeline.settings import load_settings

    dataset = t.valid(t.DatasetName, dataset)
    records = t.valid(t.Records, records)
    partition_rows = t.valid_or_none(t.PartitionRows, partition_rows)
    seed = t.valid_or_none(t.Seed, seed)
    t.valid_or_none(t.StorageUrl, storage_url)
    t.valid_or_none(t.DaskAddress, dask_address)
    settings = settings or load_settings()
    try:
        return build_spec(
            cast(str, dataset),
            records=cast(int, records),
            seed=cast(int, settings.seed if seed is None else seed),
            partition_rows=cast("int | None", partition_rows),
        )
    except UsageError as exc:
        raise UsageError(_one_line(str(exc))) from None


def check_promote_params(
    run_id: object,
    warehouse_url: object = None,
    interactive: object = False,
    decided_by: object = None,
    timeout_s: object = 3600,
    poll_interval_s: object = 5,
) -> None:
    """The promote-baseline flow's parameters (and `scenario baseline promote`'s), with the flow's types."""
    t.valid(t.RunId, run_id)
    t.valid_or_none(t.WarehouseUrl, warehouse_url)
    t.valid(t.Interactive, interactive)
    t.valid_or_none(t.DecidedBy, decided_by)
    timeout_s = t.valid(t.GateTimeout, timeout_s)
    if t.valid(t.PollInterval, poll_interval_s) > timeout_s:
        raise UsageError(
            f"poll interval must be a whole number of seconds from 1 to the timeout ({timeout_s}), got {poll_interval_s!r}"
        )


def check_reconcile_params(days: object = None, warehouse_url: object = None, today: object = None):  # noqa: ANN201 - date | None
    """The reconcile-costs flow's parameters (and `scenario reconcile-costs`'), with the flow's types; returns ``today`` as a date."""
    from datetime import date

    t.valid_or_none(t.Days, days)
    t.valid_or_none(t.WarehouseUrl, warehouse_url)  # variable:NAME passes: resolved and checked in the flow
    return None if today is None else date.fromisoformat(t.valid(t.Today, today))


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
    """A scenario run's parameters, each checked with the flow's types (flows/param_types.py) and the
    checks across them; None takes the scenario's or the settings' default."""
    sc = get_scenario(t.valid(t.ScenarioName, scenario))
    storage_url = from_variable(storage_url, "storage URL")
    warehouse_url = from_variable(warehouse_url, "warehouse URL")
    dask_address = from_variable(dask_address, "Dask address")
    records = t.valid(t.Records, sc.default_records if records is None else records)
    cases = t.valid(t.Cases, sc.default_cases if cases is None else cases)
    if cases > sc.max_cases:
        raise UsageError(f"{sc.id} draws at most {sc.max_cases} cases, got {cases}")
    shard_size = t.valid_or_none(t.ShardSize, shard_size)
    seed = t.valid_or_none(t.Seed, seed)
    t.valid(t.Switch, private)
    t.valid(t.Switch, fail_on_threshold)
    commitment = None
    if private or seed_secret is not None:
        if seed is not None:
            raise UsageError("give either --seed (public) or a private seed (--private-seed / --seed-secret), not both")
        seed = private_seed(seed_secret)
        commitment = seed_commitment(seed)
    agent = t.valid(t.AgentSpec, agent)
    sandbox = sandbox or check_sandbox(settings)
    check_sandbox_available(agent, sandbox)
    run_id = t.valid_or_none(t.RunId, run_id)
    t.valid_or_none(t.DaskAddress, dask_address)  # scheme, host and port
    t.valid_or_none(t.StorageUrl, storage_url)  # before any work, not when the flow first writes
    wh = warehouse_url or settings.resolved_warehouse_url()
    t.valid(t.WarehouseUrl, wh)  # the whole URL, not only its scheme
    check_dataset_scale(sc, records, settings.seed if seed is None else seed)  # each scenario's own range of records
    concurrency = t.valid(t.Concurrency, settings.fanout.concurrency if concurrency is None else concurrency)
    max_retries = t.valid(t.MaxRetries, settings.fanout.max_retries if max_retries is None else max_retries)
    max_cost_usd = t.valid_or_none(t.MaxCostUsd, max_cost_usd)
    price_profile = t.valid_or_none(t.PriceProfile, price_profile)
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
        case_timeout_s=float(
            t.valid(t.CaseTimeout, settings.fanout.case_timeout_s if case_timeout_s is None else case_timeout_s)
        ),
        max_answer_bytes=t.valid(
            t.MaxAnswerBytes, settings.fanout.max_answer_bytes if max_answer_bytes is None else max_answer_bytes
        ),
        max_cost_usd=max_cost_usd,
        price_profile=price_profile,
        seed_commitment=commitment,
        fail_on_threshold=fail_on_threshold,
        sandbox=sandbox,
        concurrency=concurrency,
        max_retries=max_retries,
    )
