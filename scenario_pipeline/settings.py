"""Settings as nested groups; each environment variable name follows its path.

``SCENARIO_DATA_DIR`` sets ``data_dir``; ``SCENARIO_DASK_ADDRESS`` sets ``dask.address``;
``SCENARIO_FANOUT_CASE_TIMEOUT_S`` sets ``fanout.case_timeout_s``; and so on.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DaskSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCENARIO_DASK_")

    address: str | None = Field(None, description="tcp://host:port of an existing scheduler; unset starts a LocalCluster")
    n_workers: int | None = Field(None, description="LocalCluster worker processes; default one per core")
    threads_per_worker: int = Field(2, description="LocalCluster threads per worker process")
    memory_limit: str = Field("auto", description="LocalCluster memory limit per worker")


class FanoutSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCENARIO_FANOUT_")

    shard_size: int | None = Field(None, description="cases per shard; default fits about four shards per worker thread")
    case_timeout_s: float = Field(60.0, description="wall-clock limit of one agent call")
    max_answer_bytes: int = Field(1_000_000, description="largest answer accepted, as serialized JSON")
    concurrency: int = Field(
        256, description="agent calls in flight across the whole run (docs/agents.md, 'Concurrency, rate limits and retries')"
    )
    max_retries: int = Field(
        5,
        description="retries of a call the agent rate-limited (HTTP 429, RateLimited) or could not take "
        "(HTTP 503, connection reset, connect timeout), with exponential backoff",
    )
    sync_processes: int = Field(
        8,
        description="most sandbox processes per fan-out lane for a synchronous Python agent; the pool "
        "grows only while its processes wait rather than compute",
    )


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCENARIO_SANDBOX_")

    trust_agent: bool = Field(False, description="run agents without the sandbox (only agents you wrote)")
    memory_mb: int = Field(4096, description="memory limit of one agent sandbox, all its processes together")
    max_processes: int = Field(64, description="process limit of one agent sandbox")
    network: str = Field("none", description="none: no network; outbound: the internet but not this host's loopback services")


class AgentSettings(BaseSettings):
    """``SCENARIO_AGENT_*``: what the agent under test gets from the harness, and nothing more."""

    model_config = SettingsConfigDict(env_prefix="SCENARIO_AGENT_")

    env: str = Field("", description="comma-separated names of environment variables passed to the agent; it gets no others")
    authorization: SecretStr | None = Field(None, description="Authorization header value sent to HTTP agents")


class CostSettings(BaseSettings):
    """``SCENARIO_COST_*``: price profile, cost tag, Cost Explorer retries, plan inputs."""

    model_config = SettingsConfigDict(env_prefix="SCENARIO_COST_")

    profile: str = Field("aws-us-east-1-2026-11", description="price profile: a built-in name or a .toml file")
    tag_key: str = Field("scenario-run-id", description="the cost-allocation tag that carries a run's id")
    reconcile_days: int = Field(7, description="days Cost Explorer is asked about on each reconcile (recent days are incomplete)")
    ce_max_attempts: int = Field(8, description="attempts per Cost Explorer request before giving up on throttling")
    ce_backoff_s: float = Field(1.0, description="first backoff after a throttled Cost Explorer request; doubles each time")
    ce_backoff_cap_s: float = Field(60.0, description="longest backoff between Cost Explorer attempts")
    plan_inputs: str | None = Field(
        None, description="a TOML file of plan inputs to price plans from; default cost/plan_inputs.toml"
    )


class RedshiftSettings(BaseSettings):
    """``SCENARIO_REDSHIFT_*``: secrets and load tuning, never in the URL."""

    model_config = SettingsConfigDict(env_prefix="SCENARIO_REDSHIFT_")

    password: SecretStr | None = Field(None, description="database password (prefer password_block or IAM)")
    password_block: str | None = Field(None, description="name of a Prefect Secret block holding the password")
    iam_role: str | None = Field(None, description="IAM role ARN that COPY assumes to read the run's Parquet checkpoints on S3")
    copy_min_rows: int = Field(100_000, description="case rows from which a run on S3 storage loads by COPY instead of INSERT")
    batch_rows: int = Field(2000, description="rows per multi-row INSERT statement (capped by the driver's bind-parameter limit)")


class DuckDBSettings(BaseSettings):
    """``SCENARIO_DUCKDB_*``: how long to wait for another process's lock on the warehouse file."""

    model_config = SettingsConfigDict(env_prefix="SCENARIO_DUCKDB_")

    lock_wait_s: float = Field(
        120.0,
        ge=0,
        description="longest wait for another process's lock on the file before giving up "
        "(publishing then keeps the rows in the outbox)",
    )
    lock_backoff_s: float = Field(
        0.1, gt=0, description="first wait between attempts; doubles up to lock_backoff_cap_s, jittered"
    )
    lock_backoff_cap_s: float = Field(5.0, gt=0, description="longest single wait between attempts")


class PrefectServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCENARIO_SERVER_")

    host: str = "127.0.0.1"
    port: int = 4200
    start_timeout_s: float = 120.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCENARIO_")

    data_dir: Path = Field(Path("scenario-data"), description="local folder for datasets, checkpoints and the DuckDB warehouse")
    storage_url: str | None = Field(
        None, description="file:// or s3:// root for datasets and checkpoints; default the data folder"
    )
    warehouse_url: str | None = Field(
        None, description="duckdb:///path or redshift://user@host:5439/db; default a DuckDB file in the data folder"
    )
    seed: int = Field(20261122, description="default seed for datasets and cases")
    dask: DaskSettings = Field(default_factory=DaskSettings)
    fanout: FanoutSettings = Field(default_factory=FanoutSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    redshift: RedshiftSettings = Field(default_factory=RedshiftSettings)
    duckdb: DuckDBSettings = Field(default_factory=DuckDBSettings)
    server: PrefectServerSettings = Field(default_factory=PrefectServerSettings)

    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    def resolved_storage_url(self) -> str:
        return self.storage_url or self.resolved_data_dir().as_uri()

    def resolved_warehouse_url(self) -> str:
        return self.warehouse_url or f"duckdb://{self.resolved_data_dir() / 'warehouse.duckdb'}"  # absolute path: three slashes


def load_settings() -> Settings:
    """Read settings fresh from the environment (no caching: tests and the CLI change it)."""
    return Settings()


DEFAULT_SEED = Settings.model_fields["seed"].default
__all__ = [
    "Settings",
    "DaskSettings",
    "FanoutSettings",
    "SandboxSettings",
    "AgentSettings",
    "CostSettings",
    "RedshiftSettings",
    "DuckDBSettings",
    "PrefectServerSettings",
    "load_settings",
    "DEFAULT_SEED",
]
