"""Settings as nested groups; each environment variable name follows its path.

``SCENARIO_DATA_DIR`` sets ``data_dir``; ``SCENARIO_DASK_ADDRESS`` sets ``dask.address``;
``SCENARIO_FANOUT_CASE_TIMEOUT_S`` sets ``fanout.case_timeout_s``; and so on.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
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


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCENARIO_SANDBOX_")

    trust_agent: bool = Field(False, description="run agents without the sandbox (only agents you wrote)")
    memory_mb: int = Field(4096, description="memory limit of one agent sandbox, all its processes together")
    max_processes: int = Field(64, description="process limit of one agent sandbox")
    network: str = Field("none", description="none: no network; outbound: the internet but not this host's loopback services")
    agent_env: str = Field("", validation_alias="SCENARIO_AGENT_ENV",
                           description="comma-separated names of environment variables passed to the agent; nothing else is")


class PrefectServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCENARIO_SERVER_")

    host: str = "127.0.0.1"
    port: int = 4200
    start_timeout_s: float = 120.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCENARIO_")

    data_dir: Path = Field(Path("scenario-data"), description="local folder for datasets, checkpoints and the DuckDB warehouse")
    storage_url: str | None = Field(None, description="file:// or s3:// root for datasets and checkpoints; default the data folder")
    warehouse_url: str | None = Field(None, description="duckdb:///path or redshift://user@host:5439/db; default a DuckDB file in the data folder")
    seed: int = Field(20261122, description="default seed for datasets and cases")
    dask: DaskSettings = Field(default_factory=DaskSettings)
    fanout: FanoutSettings = Field(default_factory=FanoutSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
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
__all__ = ["Settings", "DaskSettings", "FanoutSettings", "SandboxSettings", "PrefectServerSettings", "load_settings", "DEFAULT_SEED"]
