"""Cost settings; environment names follow the project's pattern (SCENARIO_COST_PROFILE, ...)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CostSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCENARIO_COST_")

    profile: str = Field("aws-us-east-1-2026-11", description="price profile: a built-in name or a .toml file")
    tag_key: str = Field("scenario-run-id", description="the cost-allocation tag that carries a run's id")
    reconcile_days: int = Field(7, description="days Cost Explorer is asked about on each reconcile (recent days are incomplete)")
    ce_max_attempts: int = Field(8, description="attempts per Cost Explorer request before giving up on throttling")
    ce_backoff_s: float = Field(1.0, description="first backoff after a throttled Cost Explorer request; doubles each time")
    ce_backoff_cap_s: float = Field(60.0, description="longest backoff between Cost Explorer attempts")
    benchmarks: str | None = Field(None, description="docs/benchmarks.md to read plan inputs from; default the checkout's")
